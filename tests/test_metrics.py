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
    assert abs(m["mean_ua"] - (0.5 + 2 / 3) / 2) < 1e-9     # the headline: every target, not the last one
    assert m["targets"][0]["concept"] == "mickey"
    assert m["accuracy"]["object"] == 0.5  # canonical object images: 2 squares right, 2 circles wrong


def test_erosion_is_base_minus_step_on_non_target_prompts():
    from duge_lora.metrics import erosion, non_target_mask, overall_accuracy

    keep = non_target_mask(SCENES, np.zeros(6, bool), [("object", "circle")])
    assert keep.tolist() == [False, False, True, True, True, True]
    base = verdicts()
    step = verdicts(color=[2, 3])              # two of the four non-target images lost their colour
    # mean over axes on images 2..5: object 2/2, colour 2/4, style 4/4, character 2/2
    assert overall_accuracy(SCENES, step, keep) == np.mean([1.0, 0.5, 1.0, 1.0])
    assert erosion(overall_accuracy(SCENES, base, keep), overall_accuracy(SCENES, step, keep)) == 0.125
    assert erosion(None, 1.0) is None
    step_on_target = verdicts(color=[0, 1])     # damage on target images does not count as erosion
    assert erosion(overall_accuracy(SCENES, base, keep), overall_accuracy(SCENES, step_on_target, keep)) == 0.0


def test_frechet_distance_known_answers():
    from duge_lora.metrics import frechet_distance

    feats = np.random.default_rng(0).normal(size=(300, 16))
    assert abs(frechet_distance(feats, feats)) < 1e-6            # identical sets
    # a shift of the mean by 1 in each of 16 dimensions, same covariance: ||mu_a - mu_b||^2 = 16
    assert abs(frechet_distance(feats, feats + 1.0) - 16.0) < 1e-6
    # doubling every feature: ||2mu - mu||^2 + Tr(S + 4S - 2 * 2S) = ||mu||^2 + Tr(S)
    expected = (feats.mean(0) ** 2).sum() + np.trace(np.cov(feats.T))
    assert abs(frechet_distance(feats, 2 * feats) - expected) < 1e-6
    assert frechet_distance(feats[:1], feats) is None


def test_cra_is_defined_per_target_on_images_without_any_target():
    # targets on two axes; only images 2 (red solid square) and 5 (green outlined mickey) show no target
    hits = verdicts(color=[2], style=[5])
    m = unlearning_metrics(SCENES, hits, np.zeros(6, bool), [("object", "circle"), ("color", "blue")])
    # on those images: object 1/1, colour 1/2, style 1/2, character 1/1
    # circle's other axes: colour .5, style .5, character 1; blue's: object 1, style .5, character 1
    assert abs(m["cra"] - np.mean([np.mean([0.5, 0.5, 1.0]), np.mean([1.0, 0.5, 1.0])])) < 1e-9
    every_axis = [("object", "circle"), ("color", "blue"), ("style", "striped"), ("character", "mickey")]
    assert unlearning_metrics(SCENES, verdicts(), np.zeros(6, bool), every_axis)["cra"] == 1.0   # still defined
