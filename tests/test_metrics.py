"""UA / UA_prev / IRA / CRA on hand-made judge verdicts with known answers."""
import numpy as np

from duge_lora.metrics import unlearning_metrics
from duge_lora.toy.world import AXES, Scene

SCENES = [Scene("circle", "red", "solid"), Scene("circle", "blue", "solid"), Scene("square", "red", "solid"),
          Scene("square", "blue", "striped"), Scene("mickey", "blue", "solid"), Scene("mickey", "green", "outlined")]


def verdicts(**wrong):
    """All correct, except the listed (axis -> image indices) verdicts."""
    hits = {a: np.ones(len(SCENES), bool) for a in AXES}
    for axis, rows in wrong.items():
        hits[axis][rows] = False
    return hits


def test_perfect_model_has_zero_ua_and_full_retention():
    m = unlearning_metrics(SCENES, verdicts(), np.zeros(6, bool), [("object", "circle")])
    assert m["ua"] == 0.0 and m["ira"] == 1.0 and m["cra"] == 1.0 and m["ua_prev"] is None


def test_erased_target_with_collateral_damage():
    # circle erased in both images; one square lost its shape (in-domain), one mickey lost its colour (cross-domain)
    hits = verdicts(object=[0, 1, 3], color=[4])
    m = unlearning_metrics(SCENES, hits, np.zeros(6, bool), [("object", "circle")])
    assert m["ua"] == 1.0
    assert m["ira"] == 0.5                      # squares: 1 of 2 read right
    # CRA over non-target images (2..5): colour 3/4, style 4/4, character 2/2 -> mean
    assert abs(m["cra"] - np.mean([0.75, 1.0, 1.0])) < 1e-9


def test_earlier_targets_and_synonyms():
    scenes = SCENES + [Scene("circle", "red", "solid")]          # last image: prompted with a synonym
    synonym = np.array([0, 0, 0, 0, 0, 0, 1], bool)
    hits = {a: np.ones(7, bool) for a in AXES}
    hits["object"][[0, 1]] = False        # circle erased for the canonical word ...
    hits["character"][[4]] = False        # mickey half erased
    m = unlearning_metrics(scenes, hits, synonym, [("character", "mickey"), ("object", "circle")])
    assert abs(m["ua"] - 2 / 3) < 1e-9    # ... but the synonym image still shows a circle
    assert m["ua_prev"] == 0.5
    assert m["targets"][0]["concept"] == "mickey"
    assert m["accuracy"]["object"] == 0.5  # canonical object images: 2 squares right, 2 circles wrong
