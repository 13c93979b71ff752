"""Training one adapter: exact start, plain-diffusers round trip, cache, resume, loss terms, errors."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from duge_lora.adapter import LoraSpec, attach
from duge_lora.checkpoint import partial_dir
from duge_lora.compose import apply_to_base
from duge_lora.errors import TrainingStopped
from duge_lora.losses import DEFAULT_WEIGHTS
from duge_lora.models import load_base
from duge_lora.records import resolve_adapter as read_adapter
from duge_lora.step import NEW, training_step
from duge_lora.train import TrainConfig, prepare, train_adapter
from duge_lora.worlds.toy import TOY
from duge_lora_cli.main import main

FAST = dict(steps=2, batch=2, max_prompts=4, checkpoint_every=0)


def probe(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = unet.config
    x = torch.randn(2, c.in_channels, c.sample_size, c.sample_size, generator=g)
    e = torch.randn(2, 16, c.cross_attention_dim, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500, 100]), encoder_hidden_states=e).sample


def test_zero_initialised_adapter_is_exactly_the_base():
    base = load_base("toy", device="cpu")
    before = probe(base.pipe.unet)
    attach(base.pipe.unet, LoraSpec(), NEW)
    assert torch.equal(probe(base.pipe.unet), before)


def test_ff_low_names_the_blocks_below_full_resolution_and_reads_back():
    """ff-low (the robust preset's feed-forward target, adapter.BY_BLOCK): the toy UNet's four transformer blocks below
    the latent's full resolution; peft gets their full names; targets_of reads ff-low back from the names; ff and
    ff-low together are one clear error."""
    from duge_lora.adapter import spec_of, target_names, targets_of
    from duge_lora.errors import DugeError

    unet = load_base("toy", device="cpu").pipe.unet
    low = target_names(unet, LoraSpec(targets=("ff-low",)))
    every = target_names(unet, LoraSpec(targets=("ff",)))
    assert len(every) == 7 and low == [n for n in every if not n.startswith(("down_blocks.0.", "up_blocks.1."))]
    assert len(low) == 4 and "mid_block.attentions.0.transformer_blocks.0.ff.net.2" in low
    spec = LoraSpec(targets=("k", "v", "ff-low"))
    names = target_names(unet, spec)
    assert sorted(spec.lora_config(names).target_modules) == names
    attach(unet, spec, NEW)
    adapted = {n for n, m in unet.named_modules() if hasattr(m, "lora_A") and NEW in m.lora_A}
    assert adapted == set(names) and targets_of(names) == ("ff-low", "k", "v") and targets_of(every) == ("ff",)
    assert spec_of({n: (torch.zeros(4, 2), torch.zeros(2, 4)) for n in names}).targets == ("ff-low", "k", "v")
    with pytest.raises(DugeError, match="ff already holds"):
        LoraSpec(targets=("ff", "ff-low"))


@pytest.fixture(scope="module")
def circle(tmp_path_factory):
    """A short real training run on the toy model (also used by later tests)."""
    root = tmp_path_factory.mktemp("circle")
    base = load_base("toy", device="cpu")
    req = base.world.make_request("circle")
    record = train_adapter(base, req, [], TrainConfig(steps=6, batch=2, max_prompts=6, checkpoint_every=0),
                           root / "erase-circle", cache=root / "cache")
    return root, record


def test_saved_adapter_loads_in_plain_diffusers_and_matches_our_stack(circle):
    from diffusers import StableDiffusionPipeline
    from duge_lora import toy
    root, record = circle
    folder = root / "erase-circle"
    assert {p.name for p in folder.iterdir()} == {"pytorch_lora_weights.safetensors", "duge.json", "README.md"}
    pipe = StableDiffusionPipeline.from_pretrained(str(toy.PIPELINE_DIR), dtype=torch.float32)
    base_out = probe(pipe.unet)
    pipe.load_lora_weights(str(folder), adapter_name="erase")
    plain = probe(pipe.unet)
    ours = load_base("toy", device="cpu")
    apply_to_base(ours, [str(folder)])
    assert (plain - probe(ours.pipe.unet)).abs().max() < 1e-5
    assert (plain - base_out).abs().max() > 1e-6          # the adapter does something


def test_record_and_header_carry_the_facts(circle):
    root, record = circle
    adapter = read_adapter(root / "erase-circle")
    on_disk = json.loads((root / "erase-circle" / "duge.json").read_text())
    assert adapter.record.to_dict() == on_disk
    assert on_disk["request"]["concept"] == "circle" and on_disk["request"]["anchor"] == "oval"
    assert on_disk["base"]["fingerprint"] and on_disk["parents"] == []
    assert set(on_disk["final_losses"]) >= {"ca_attn", "ca_eps", "pp", "replay", "keep"}
    assert not {"drift", "overlap"} & set(on_disk["final_losses"])     # weight 0 by default: not computed
    assert "circle" in (root / "erase-circle" / "README.md").read_text()


def test_cached_data_is_reused_and_parents_are_recorded(circle):
    root, first = circle
    assert not any(first.data["cached"].values())
    base = load_base("toy", device="cpu")
    req = base.world.make_request("circle")
    again = train_adapter(base, req, [], TrainConfig(steps=1, batch=2, max_prompts=6, checkpoint_every=0),
                          root / "again", cache=root / "cache")
    assert all(again.data["cached"].values())
    second = load_base("toy", device="cpu")
    rec = train_adapter(second, TOY.make_request("red"), [read_adapter(root / "erase-circle")],
                        TrainConfig(**FAST, weights={"overlap": 0.1}), root / "erase-red", cache=root / "cache")
    assert rec.parents[0].concept == "circle" and rec.parents[0].order == 1
    assert rec.final_losses["overlap"] > 0            # switched on: adapter 2 is measured against adapter 1


def test_interrupted_run_resumes_to_the_same_adapter(tmp_path, data_cache):
    cfg = TrainConfig(steps=4, batch=2, max_prompts=4, checkpoint_every=2)
    straight = tmp_path / "straight"
    train_adapter(load_base("toy", device="cpu"), TOY.make_request("star"), [], cfg, straight, cache=data_cache)

    def interrupt(stage, step, total, info):
        if stage == "train" and step == 3:
            raise KeyboardInterrupt
    out = tmp_path / "resumed"
    with pytest.raises(TrainingStopped, match="resume"):
        train_adapter(load_base("toy", device="cpu"), TOY.make_request("star"), [], cfg, out, cache=data_cache, progress=interrupt)
    assert not out.exists() and (partial_dir(out) / "checkpoint.safetensors").exists()
    train_adapter(load_base("toy", device="cpu"), TOY.make_request("star"), [], cfg, out, cache=data_cache, resume=True)
    a, b = load_file(str(straight / "pytorch_lora_weights.safetensors")), load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not partial_dir(out).exists()


@pytest.mark.parametrize("term", ["ca_attn", "ca_eps", "pp", "pp_kv", "replay", "drift", "keep", "protect", "keep_attn", "keep_ff"])
def test_each_loss_term_decreases_when_optimised(term, data_cache):
    """Start from a random (non-zero) adapter so every term is positive, then optimise that term alone (protect
    needs an earlier target: the shipped circle adapter)."""
    cfg = TrainConfig(steps=1, batch=4, max_prompts=6, weights={k: 0.0 for k in DEFAULT_WEIGHTS} | {term: 1.0}, lr=1e-2,
                      init="zero")          # peft's random A with the random B below (the closed-form start has its own test)
    parents = [read_adapter(Path(__file__).parent.parent / "adapters" / "toy" / "circle")] if term == "protect" else []
    req = TOY.make_request("square", earlier=[p.record.request for p in parents])
    s = prepare(load_base("toy", device="cpu"), req, parents, cfg, data_cache)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in s.step.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    values = []
    for _ in range(10):                 # measured: every term is at 0.27 of its start or less after 8 steps
        loss, terms = training_step(s.step, torch.Generator().manual_seed(1))
        values.append(terms[term])
        s.opt.zero_grad()
        loss.backward()
        s.opt.step()
    assert values[0] > 0 and values[-1] < 0.7 * values[0], values


def test_two_step_train_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DUGE_LORA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "erase-mickey"
    code = main(["train", "--concept", "Mickey Mouse", "--steps", "2", "--batch", "2", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads(captured.out)
    assert record["request"]["concept"] == "mickey" and record["request"]["synonyms"] == ["mouse"]
    assert "anchor: circle" in captured.err and "(default)" in captured.err
    assert (out / "pytorch_lora_weights.safetensors").exists()
    # the same output again is refused, and the adapter is untouched
    before = (out / "pytorch_lora_weights.safetensors").read_bytes()
    assert main(["train", "--concept", "mickey", "--steps", "2", "-o", str(out)]) == 4
    assert "--overwrite" in capsys.readouterr().err and (out / "pytorch_lora_weights.safetensors").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--concept", "  "], "empty"),
    (["--concept", "zebra"], "not in the toy model's vocabulary"),
    (["--concept", "circle", "--targets", "k,x"], "Unknown --targets"),
    (["--concept", "circle", "--weight", "drift=lots"], "NAME=NUMBER"),
    (["--concept", "circle", "--after", "nowhere"], "No adapter"),          # a missing input file: exit 3
    # the shipped circle adapter erased circle: as an anchor it no longer draws itself
    (["--concept", "oval", "--anchor", "circle", "--after", str(Path(__file__).parent.parent / "adapters" / "toy" / "circle")],
     "was erased by an earlier request"),
])
def test_train_bad_input(tmp_path, capsys, args, message):
    code = main(["train", *args, "--steps", "1", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == (3 if "--after" in args and "--anchor" not in args else 2) and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_earlier_adapters_are_refused(circle, tmp_path, capsys):
    root, _ = circle
    src = root / "erase-circle" / "pytorch_lora_weights.safetensors"
    # corrupt: a truncated file
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / src.name).write_bytes(src.read_bytes()[:200])
    # another base: same weights, a different fingerprint in the header
    from safetensors import safe_open
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    record = json.loads(meta["duge"])
    record["base"]["fingerprint"] = "0" * 16
    other = tmp_path / "other-base"
    other.mkdir()
    save_file(load_file(str(src)), str(other / src.name), metadata=meta | {"duge": json.dumps(record)})
    # a pickle
    pickled = tmp_path / "adapter.bin"
    torch.save({}, pickled)
    for path, message in ((corrupt, "not a readable safetensors"), (other, "another base"), (pickled, "pickle")):
        code = main(["train", "--concept", "red", "--after", str(path), "--steps", "1", "-o", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 3 and message in err and "Traceback" not in err, err
    # targets other modules: an adapter on to_q under a run on to_k,to_v
    code = main(["train", "--concept", "red", "--after", str(root / "erase-circle"), "--targets", "q",
                 "--steps", "1", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 3 and "adapts other modules" in err


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, data_cache):
    cfg = TrainConfig(steps=4, batch=2, max_prompts=4, checkpoint_every=0, weights={"ca_eps": 1e300})  # overflows float32
    with pytest.raises(TrainingStopped, match="loss became"):
        train_adapter(load_base("toy", device="cpu"), TOY.make_request("heart"), [], cfg, tmp_path / "o", cache=data_cache)
    assert not (tmp_path / "o").exists()


def test_trains_on_a_tiny_sd_architecture_base(tiny_sd, tmp_path, data_cache):
    base = load_base(tiny_sd, device="cpu")
    req = base.world.make_request("horse", anchor="a dog", preserve=["cat"])
    rec = train_adapter(base, req, [], TrainConfig(steps=2, batch=2, max_prompts=4, checkpoint_every=0,
                                                   mixed_precision="bf16", gradient_checkpointing=True),
                        tmp_path / "horse", cache=data_cache)
    assert rec.request.axis == "object" and "kind" in rec.request.defaults and rec.base.source == tiny_sd
    assert read_adapter(tmp_path / "horse").spec.targets == ("k", "v")


@pytest.mark.parametrize("method, terms", [("naive", {"ca_attn", "ca_eps"}), ("l2sp", {"ca_attn", "ca_eps", "drift"}),
                                           ("ablate", {"ca_eps"}), ("esd", {"esd"})])
def test_baseline_objectives_train_two_steps(method, terms, tmp_path, data_cache):
    """The baselines are registry entries: the same loop, data and adapter shape."""
    rec = train_adapter(load_base("toy", device="cpu"), TOY.make_request("triangle"), [],
                        TrainConfig(method=method, **FAST), tmp_path / method, cache=data_cache)
    assert rec.method == method and set(rec.final_losses) == terms | {"loss"}
    assert rec.final_losses["loss"] > 0
    assert read_adapter(tmp_path / method).record.method == method
    # only the anchor set is generated: the baselines never read the preserve or replay images
    assert rec.data["anchor_latents"] > 0 and rec.data["preserve_latents"] == rec.data["replay_latents"] == 0


def test_uce_closed_form_baseline(tmp_path):
    """UCE: no training, an adapter whose truncation error is reported, loadable like any other."""
    base = load_base("toy", device="cpu")
    before = probe(base.pipe.unet)
    rec = train_adapter(base, TOY.make_request("circle"), [], TrainConfig(method="uce"), tmp_path / "uce")
    assert rec.method == "uce" and rec.data["target_tokens"] > 0 and 0 <= rec.data["svd_relative_error_max"] < 1
    fresh = load_base("toy", device="cpu")
    apply_to_base(fresh, [str(tmp_path / "uce")])
    assert (probe(fresh.pipe.unet) - before).abs().max() > 1e-4


def test_closed_form_start(tmp_path, data_cache):
    """--init uce: adapter k starts at UCE's closed-form edit of theta_{k-1} (the DUGE losses then refine it)."""
    from duge_lora.adapter import factors
    from duge_lora.uce import uce_factors

    cfg = TrainConfig(init="uce", **FAST)
    s = prepare(load_base("toy", device="cpu"), TOY.make_request("star"), [], cfg, data_cache)
    expected, _ = uce_factors(load_base("toy", device="cpu"), TOY.make_request("star"), [], cfg.lora, cfg.seed)
    live = factors(s.step.unet, NEW)
    assert set(live) == set(expected)
    for module, (a, b) in expected.items():
        assert torch.equal(live[module][0].detach(), a) and torch.equal(live[module][1].detach(), b)
    with pytest.raises(Exception, match="init"):
        TrainConfig(init="warm")


@pytest.mark.parametrize("method", ["duge", "naive", "uce"])
def test_query_and_output_projections_can_be_adapted(method, tmp_path, data_cache):
    """--targets q,k,v,out: to_q and to_out read image features, not the text states, so the key/value terms
    (pp_kv, keep, protect) and UCE's closed form apply to to_k/to_v alone; every method still trains all four
    (before 2026-11-30 every method failed here with a shape error)."""
    base = load_base("toy", "cpu")
    lora = LoraSpec(targets=("q", "k", "v", "out"))
    record = train_adapter(base, TOY.make_request("circle"), [], TrainConfig(method=method, lora=lora, **FAST),
                           tmp_path / "a", cache=data_cache)
    saved = load_file(str(tmp_path / "a" / "pytorch_lora_weights.safetensors"))
    assert {k.split(".attn2.")[1].split(".lora")[0] for k in saved} == {"to_q", "to_k", "to_v", "to_out.0"}
    if method != "uce":
        assert all(torch.isfinite(torch.tensor(v)) for v in record.final_losses.values())
        assert any(float(v.abs().max()) > 0 for k, v in saved.items() if "to_q" in k and "lora_B" in k)


@pytest.mark.parametrize("method, weight", [("esd", "esd_eta=2"), ("duge", "pp_dreambooth=1"), ("uce", "uce_lambda=0.5")])
def test_documented_parameters_are_accepted_by_weight(tmp_path, capsys, monkeypatch, method, weight, data_cache):
    """method.md names --weight esd_eta=..., pp_dreambooth=1 and uce_lambda=...: each trains, and the record keeps it."""
    monkeypatch.setenv("DUGE_LORA_CACHE", str(data_cache))
    out = tmp_path / "a"
    code = main(["train", "--concept", "circle", "--method", method, "--weight", weight, "--steps", "1", "--batch", "2",
                 "--max-prompts", "8", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    name, value = weight.split("=")
    assert json.loads(captured.out)["loss_weights"][name] == float(value)
