"""The chain holds where requests depend on each other (method.md, "Anchors along a chain"), trained for real.

Erase oval (anchor circle), then circle: circle's default anchor, oval, was erased, so theta_1 draws its
replacement under "oval" prompts and the anchor moves to the next neighbour (heart); and circle was oval's anchor,
so the second request erases an earlier target's anchor. At the end both must be erased, and the shapes that were
never targets must still be drawn.
"""
import numpy as np
import pytest

from duge_lora.compose import apply_to_base
from duge_lora.evaluate import sample_eval
from duge_lora.metrics import per_axis_accuracy, unlearning_metrics
from duge_lora.models import load_base
from duge_lora.records import requests_of, resolve_adapters
from duge_lora.toy import world
from duge_lora.train import TrainConfig, train_adapter


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    folders = []
    for concept in ("oval", "circle"):
        base = load_base("toy", device="cpu")
        parents = resolve_adapters(folders)
        req = base.world.make_request(concept, earlier=requests_of(parents))
        # half the default steps (quick's bench trains 40): measured, both erased at 100%, the other shapes at 97%
        train_adapter(base, req, parents, TrainConfig(steps=50), root / concept, cache=root / "cache")
        folders.append(root / concept)
    return resolve_adapters(folders)


def test_the_anchor_moved_and_says_why(chain):
    oval, circle = (a.record.request for a in chain)
    assert oval.anchor == "circle" and not oval.notes
    assert circle.anchor == "heart" and "'oval' was erased" in circle.notes[0]


def test_both_targets_stay_erased_and_the_rest_is_kept(chain):
    base = load_base("toy", device="cpu")
    apply_to_base(base, [str(a.path) for a in chain])
    targets = requests_of(chain)
    scenes = [s for s in world.all_scenes() if s.kind == "object" and s.style == "solid"]
    s = sample_eval(base, 1, 0, targets, scenes)
    m = unlearning_metrics(s.scenes, s.hits, s.synonym, [(t.axis, t.concept) for t in targets])
    uas = {t["concept"]: t["ua"] for t in m["targets"]}
    assert uas["oval"] >= 0.9 and uas["circle"] >= 0.9, uas
    others = np.array([sc.subject not in ("oval", "circle") for sc in s.scenes]) & ~s.synonym
    assert per_axis_accuracy(s.scenes, s.hits, others)["object"] >= 0.9
