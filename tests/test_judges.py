"""Judges (duge_lora/judges) on tiny random CLIP and ResNet models built here: kind detection, predictions checked
against the models' own outputs, label matching, features, CLIP score, and every refusal in one sentence."""
from __future__ import annotations

import time

import pytest
import torch

from duge_lora.errors import BadInput, EnvironmentProblem, UsageError
from duge_lora.judges import Judge, load_judge
from tiny import LABELS, build_tiny_classifier, build_tiny_clip

WORDS = ["a", "photo", "picture", "of", "church", "tench", "garbage", "truck", "dog"]
CANDIDATES = ["church", "tench", "garbage truck", "dog"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> str:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"), WORDS)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> str:
    return build_tiny_classifier(tmp_path_factory.mktemp("resnet"))


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_judge(clip_dir)


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    return load_judge(classifier_dir)


def images(n: int = 6, size: tuple[int, int] = (40, 48), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_kinds_are_detected_from_config(clip, classifier, clip_dir):
    assert isinstance(clip, Judge) and clip.kind == "clip" and clip.name == clip_dir
    assert isinstance(classifier, Judge) and classifier.kind == "classifier"
    assert not clip.model.training and next(clip.model.parameters()).dtype == torch.float32
    assert clip.device == torch.device("cpu")


def test_images_are_preprocessed_as_the_processor_does(clip):
    """[0, 1] floats (any size) are resized and normalised, not rescaled a second time."""
    grey = torch.full((2, 3, 50, 40), 0.5)
    pixels = clip.pixels(grey)
    mean, std = torch.tensor(clip.processor.image_mean), torch.tensor(clip.processor.image_std)
    assert pixels.shape == (2, 3, 32, 32)
    assert torch.allclose(pixels[0, :, 5, 5], (0.5 - mean) / std, atol=0.02)


def test_clip_predicts_the_argmax_of_clips_own_logits(clip):
    from transformers import CLIPModel

    imgs = images(8)
    got = clip.predict(imgs, CANDIDATES)
    assert len(got) == 8 and set(got) <= set(CANDIDATES)
    assert clip.predict(imgs, CANDIDATES) == got                         # deterministic
    # with one template, the prediction is CLIPModel's own logits_per_image argmax
    clip.templates = ("a photo of {}.",)
    try:
        single = clip.predict(imgs, CANDIDATES)
    finally:
        from duge_lora.judges.clip import TEMPLATES
        clip.templates = TEMPLATES
    tokens = clip.tokenizer([f"a photo of {c}." for c in CANDIDATES], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = CLIPModel.forward(clip.model, input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                pixel_values=clip.pixels(imgs))
    assert single == [CANDIDATES[i] for i in out.logits_per_image.argmax(1).tolist()]


def test_clip_picks_the_candidate_whose_text_embedding_is_the_images(clip, monkeypatch):
    """Text embeddings set by hand: the candidate pointing along the image's embedding wins, for every template."""
    imgs = images(2)
    target = clip.image_embeds(imgs)
    wanted = ["dog", "tench"]

    def text_embeds(texts):
        rows = []
        for text in texts:
            word = next(c for c in CANDIDATES if f" {c}." in text)
            rows.append(target[wanted.index(word)] if word in wanted else -target[0] - target[1])
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    monkeypatch.setattr(clip, "text_embeds", text_embeds)
    assert clip.predict(imgs, CANDIDATES) == wanted
    sims = clip.similarities(imgs, CANDIDATES)
    assert sims[0, CANDIDATES.index("dog")] == pytest.approx(1, abs=1e-5)


def test_clip_score_and_features(clip):
    imgs = images(5)
    score = clip.clip_score(imgs, ["a photo of church."] * 5)
    assert score.shape == (5,) and score.dtype == torch.float32
    assert bool(((score >= 0) & (score <= 100)).all())
    cos = (clip.image_embeds(imgs) @ clip.text_embeds(["a photo of church."]).T)[:, 0]
    assert torch.allclose(score, (100 * cos).clamp(min=0), atol=1e-4)
    feats = clip.features(imgs)
    assert feats.shape == (5, 16) and feats.dtype == torch.float32
    assert torch.allclose(feats.norm(dim=1), torch.ones(5), atol=1e-5)
    assert clip.has_concept("anything at all") and clip.check_concepts(["chruch"]) is None
    assert clip.matches("Garbage  Truck", "garbage truck") and not clip.matches("church", "dog")


def test_classifier_predicts_its_top1_label(classifier):
    imgs = images(7, size=(36, 36))
    got = classifier.predict(imgs, ["ignored"])
    assert len(got) == 7 and set(got) <= set(LABELS.values())
    assert classifier.predict(imgs, []) == got                            # candidates ignored, deterministic
    with torch.no_grad():
        logits = classifier.model(pixel_values=classifier.pixels(imgs)).logits
    assert got == [LABELS[i] for i in logits.argmax(1).tolist()]
    assert classifier.clip_score(imgs, ["x"] * 7) is None


def test_classifier_features_are_the_pooled_features_before_the_head(classifier):
    imgs = images(3)
    feats = classifier.features(imgs)
    assert feats.shape == (3, 16) and feats.dtype == torch.float32
    with torch.no_grad():
        pooled = classifier.model.resnet(classifier.pixels(imgs)).pooler_output.flatten(1)
    assert torch.allclose(feats, pooled, atol=1e-5)


def test_classifier_label_matching(classifier):
    assert classifier.matches("church, church building", "church")
    assert classifier.matches("church, church building", "Church")
    assert classifier.matches("church, church building", " church  Building ")
    assert classifier.matches("garbage truck, dustcart", "garbage_truck")
    assert not classifier.matches("garbage truck, dustcart", "garbage")
    assert classifier.has_concept("tench") and classifier.has_concept("Golden Retriever")
    assert not classifier.has_concept("garbage") and not classifier.has_concept("chruch")
    classifier.check_concepts(["church", "dustcart"])
    with pytest.raises(UsageError) as err:
        classifier.check_concepts(["church", "chruch"])
    assert "church" in err.value.hint and "chruch" in err.value.what and "`judge`" in err.value.what


def test_bad_images_are_refused(classifier):
    with pytest.raises(UsageError, match="N, 3, H, W"):
        classifier.predict(torch.rand(3, 32, 32), [])


def test_a_bert_folder_is_neither(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path / "bert")
    with pytest.raises(BadInput) as err:
        load_judge(str(tmp_path / "bert"))
    assert "neither a CLIP model nor an image classifier" in str(err.value) and "'bert'" in str(err.value)
    assert err.value.option == "judge" and "microsoft/resnet-50" in err.value.hint


def test_missing_folder_and_no_config(tmp_path):
    with pytest.raises(BadInput, match="neither an existing folder nor a Hub id"):
        load_judge(str(tmp_path / "nowhere" / "judge"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no config.json"):
        load_judge(str(tmp_path / "empty"))


def test_pickle_only_weights_are_refused(tmp_path, classifier_dir):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(classifier_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(BadInput, match="pickle") as err:
        load_judge(str(folder))
    assert "safetensors" in str(err.value)


def test_a_hub_id_offline_and_not_cached_fails_fast(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(EnvironmentProblem, match="offline") as err:
        load_judge("openai/clip-vit-large-patch14")
    assert time.monotonic() - start < 5
    assert "openai/clip-vit-large-patch14" in str(err.value)
