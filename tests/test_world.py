"""The toy world and its tokenizer are deterministic, complete and consistent."""
import random

import numpy as np
from transformers import CLIPTokenizer

from duge_lora.toy import world
from duge_lora.toy.tokenizer import build_bpe, write_tokenizer


def test_world_has_the_promised_concepts():
    assert len(world.OBJECTS) >= 8 and len(world.COLORS) >= 6 and len(world.STYLES) >= 3 and len(world.CHARACTERS) >= 3
    assert len(world.all_scenes()) == len(world.OBJECTS + world.CHARACTERS) * len(world.COLORS) * len(world.STYLES)
    for concept, near in world.NEIGHBOURS.items():
        assert near, concept
        assert all(world.axis_of(n) == world.axis_of(concept) and n != concept for n in near)
    for concept, syns in world.SYNONYMS.items():
        assert all(world.canonical(s) == concept for s in syns)


def test_render_is_deterministic_per_seed_and_varies_across_seeds():
    scenes = world.sample_scenes(24, seed=3)
    assert scenes == world.sample_scenes(24, seed=3)
    a, b = world.render_batch(scenes, seed=5), world.render_batch(scenes, seed=5)
    assert a.shape == (24, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, world.render_batch(scenes, seed=6))


def test_styles_and_colours_are_visible_in_the_pixels():
    base = world.Scene("square", "red", "solid")
    solid = world.render(base, 0).astype(int)
    outlined = world.render(world.Scene("square", "red", "outlined"), 0).astype(int)
    blue = world.render(world.Scene("square", "blue", "solid"), 0).astype(int)
    ink = lambda img: (np.abs(img - img[0, 0]).sum(-1) > 60).sum()  # noqa: E731
    assert ink(outlined) < 0.7 * ink(solid)          # an outline paints less than a fill
    assert solid[..., 0].max() > 180 and blue[..., 2].max() > 180


def test_captions_use_only_vocabulary_words():
    rng, vocab = random.Random(0), set(world.vocabulary())
    for scene in world.sample_scenes(300, seed=1):
        assert set(world.caption(scene, rng).split()) <= vocab


def test_tokenizer_makes_each_word_one_token_and_is_reproducible(tmp_path):
    vocab, merges = build_bpe(world.vocabulary())
    assert (vocab, merges) == build_bpe(world.vocabulary())
    tok = CLIPTokenizer.from_pretrained(write_tokenizer(tmp_path / "t"))
    for word in world.vocabulary():
        ids = tok(word).input_ids
        assert len(ids) == 3 and ids[1] == vocab[word + "</w>"], word
    again = write_tokenizer(tmp_path / "u")
    assert (tmp_path / "t" / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_replay_never_shows_the_current_target():
    """Earlier targets are replayed (they must stay erased), but not their scenes that show this request's
    target: replaying "a red striped circle" while erasing "striped" would teach the model to keep stripes."""
    from duge_lora.worlds.toy import TOY

    earlier = [TOY.make_request("circle"), TOY.make_request("red")]
    req = TOY.make_request("striped")
    sets = TOY.prompt_sets(req, earlier)
    assert not [p for p in sets.replay + sets.keep + sets.preserve if "striped" in p.split()]
    assert any("circle" in p.split() for p in sets.replay) and any(" red " in p for p in sets.replay)
    assert all({"striped", *req.synonyms} & set(p.split()) for p in sets.target)


def test_an_erased_anchor_is_never_the_default():
    """Anchors are resolved against theta_{k-1}: erase oval (anchor circle), then circle: its default anchor oval
    was erased, and oval's prompts now draw what replaced it, so the next neighbour stands in, and it says so."""
    from duge_lora.worlds.toy import TOY

    oval = TOY.make_request("oval")
    circle = TOY.make_request("circle", earlier=[oval])
    assert circle.anchor == "heart" and circle.preserve == ("heart",)   # oval draws circles: erased with them
    assert circle.notes and "oval" in circle.notes[0] and "heart" in circle.notes[0]
    assert "'oval' was erased onto 'circle'" in circle.notes[1]
    assert TOY.make_request("circle").anchor == "oval" and not TOY.make_request("circle").notes
    # a character's stand-ins are plain shapes, never another character
    kitty = TOY.make_request("kitty", earlier=[TOY.make_request("circle")])
    assert kitty.anchor == "oval"


def test_earlier_targets_that_now_draw_the_concept_are_erased_with_it():
    """oval erased onto circle, then circle: theta_{k-1} draws circles for "oval", so oval's scenes are erased with
    circle's onto its anchor (heart), and no set holds them where they are. After heart, both follow it (the chain
    of anchors is followed to its end); with circle erased onto oval, erasing heart moves nothing."""
    from duge_lora.worlds import drawn_as
    from duge_lora.worlds.generic import GenericWorld
    from duge_lora.worlds.toy import TOY

    oval = TOY.make_request("oval")
    circle = TOY.make_request("circle", earlier=[oval])
    sets = TOY.prompt_sets(circle, [oval])
    pairs = dict(zip(sets.target, sets.anchor))
    assert pairs["a red striped oval"] == "a red striped heart" and pairs["a red striped circle"] == "a red striped heart"
    assert not [p for p in sets.preserve + sets.replay + sets.keep + sets.protect if "oval" in p.split()]
    heart = TOY.make_request("heart", earlier=[oval, circle])
    assert [e.concept for e in drawn_as(heart, [oval, circle])] == ["oval", "circle"]
    assert "a blue solid oval" in TOY.prompt_sets(heart, [oval, circle]).target
    first = TOY.make_request("circle")
    assert drawn_as(TOY.make_request("heart", earlier=[first]), [first]) == [] and not TOY.make_request("square", earlier=[first]).notes
    g = GenericWorld()
    snoopy = g.make_request("Snoopy", anchor="Garfield", kind="character")
    garfield = g.make_request("Garfield", kind="character", preserve=["Snoopy", "Tom"], earlier=[snoopy])
    assert garfield.preserve == ("Tom",) and "'Snoopy' was erased onto 'Garfield'" in garfield.notes[-1]
    gsets = g.prompt_sets(garfield, [snoopy])
    assert dict(zip(gsets.target, gsets.anchor))["a toy of Snoopy"] == f"a toy of {garfield.anchor}"
    assert not [p for p in gsets.preserve + gsets.replay + gsets.keep + gsets.protect if "Snoopy" in p]


def test_an_erased_anchor_given_by_hand_needs_force():
    import pytest

    from duge_lora.errors import DugeError
    from duge_lora.worlds.toy import TOY

    earlier = [TOY.make_request("circle")]
    with pytest.raises(DugeError, match="erased by an earlier request") as info:
        TOY.make_request("oval", anchor="circle", earlier=earlier)
    assert info.value.option == "anchor" and "`force`" in str(info.value)
    forced = TOY.make_request("oval", anchor="circle", earlier=earlier, force=True)
    assert forced.anchor == "circle" and "forced" in forced.notes[0]


def test_nothing_left_to_draw_instead_is_one_sentence():
    import pytest

    from duge_lora.errors import DugeError
    from duge_lora.worlds.toy import TOY

    earlier = []
    for c in ("solid", "outlined"):
        earlier.append(TOY.make_request(c, earlier=earlier))
    with pytest.raises(DugeError, match="Every concept that could stand in for 'striped'"):
        TOY.make_request("striped", earlier=earlier)
    assert TOY.make_request("striped", anchor="solid", earlier=earlier, force=True).anchor == "solid"
