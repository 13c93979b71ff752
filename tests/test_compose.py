"""compose: merged == stacked, cat == stack, remove restores, formats round-trip through plain loaders."""
import json

import pytest
import torch
from safetensors.torch import load_file

from duge_lora.adapter import LoraSpec, fingerprint, target_names
from duge_lora.compose import compose, load_items, removal, write_output
from duge_lora.errors import DugeError
from duge_lora.formats import write_adapter_folder
from duge_lora.models import load_base
from duge_lora.verify import composed_unet, live_stack, probe
from duge_lora_cli.main import main


def random_adapter(base, folder, seed, concept, rank=4, alpha=4.0, parents=()):
    """An adapter with random, non-small factors (a harder exactness test than a briefly trained one)."""
    spec = LoraSpec(rank=rank, alpha=alpha)
    g = torch.Generator().manual_seed(seed)
    modules = dict(base.pipe.unet.named_modules())
    weights = {}
    for name in target_names(base.pipe.unet, spec):
        lin = modules[name]
        weights[name] = (torch.randn(rank, lin.in_features, generator=g) * 0.05,
                         torch.randn(lin.out_features, rank, generator=g) * 0.05)
    record = {"request": {"concept": concept}, "base": {"name": base.name, "source": base.source,
                                                        "fingerprint": fingerprint(base.pipe.unet)},
              "parents": list(parents), "lora": {"targets": ["k", "v"]}}
    write_adapter_folder(folder, weights, spec, record, f"# {concept}\n")
    return folder


@pytest.fixture(scope="module", params=["toy", "tiny"])
def world(request, tmp_path_factory, tiny_sd):
    root = tmp_path_factory.mktemp(request.param)
    name = "toy" if request.param == "toy" else tiny_sd
    base = load_base(name, device="cpu")
    paths = [random_adapter(base, root / f"a{i}", i, f"c{i}", alpha=2.0 + i) for i in range(3)]
    return name, root, [str(p) for p in paths]


def stacked(name, paths, weights=None):
    live = load_base(name, device="cpu")
    live_stack(live, paths, weights)
    return probe(live.pipe.unet)


def test_merged_equals_stacked_and_cat_equals_stack(world):
    name, root, paths = world
    ref = stacked(name, paths, [1.0, 0.5, -0.25])
    assert (ref - stacked(name, [])).abs().max() > 1e-3          # the adapters change the output
    items = load_items([f"{paths[0]}", f"{paths[1]}:0.5", f"{paths[2]}:-0.25"])
    source = load_base(name, device="cpu").source
    # the floors hold on the toy model; the tiny random UNet amplifies float32 rounding of the
    # different summation order of cat (one rank-12 LoRA) vs the stack (three rank-4) to ~1.2e-6
    cat_tol = 1e-6 if name == "toy" else 2e-6
    for method, fmt, tol in (("sum", "unet", 1e-5), ("sum", "pipeline", 1e-5), ("cat", "lora", cat_tol)):
        out = root / f"{method}-{fmt}" if fmt == "pipeline" else root / f"{method}-{fmt}.safetensors"
        write_output(compose(items, method, fmt), source, out)
        diff = (probe(composed_unet(out, fmt, source, torch.device("cpu"))) - ref).abs().max()
        assert diff <= tol, (method, fmt, float(diff))


def test_remove_restores_the_merge_of_the_rest(world):
    name, root, paths = world
    source = load_base(name, device="cpu").source
    all3, two = root / "all3.safetensors", root / "two.safetensors"
    write_output(compose(load_items(paths), "sum", "unet"), source, all3)
    write_output(compose(load_items([paths[0], paths[2]]), "sum", "unet"), source, two)
    comp, state = removal(all3, load_items([paths[1]])[0].adapter)
    back = root / "removed.safetensors"
    write_output(comp, source, back, state=state)
    a, b = load_file(str(back)), load_file(str(two))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    dev = torch.device("cpu")
    assert (probe(composed_unet(back, "unet", source, dev)) - probe(composed_unet(two, "unet", source, dev))).abs().max() <= 1e-5
    man = json.loads(back.with_suffix(".manifest.json").read_text())
    assert [x["concept"] for x in man["adapters"]] == ["c0", "c2"] and man["removed"][0]["concept"] == "c1"


def test_svd_reports_its_error(world):
    name, root, paths = world
    full = compose(load_items(paths), "svd", "lora", rank=12)
    low = compose(load_items(paths), "svd", "lora", rank=2)
    assert full.relative_error < 1e-5 < low.relative_error < 1


def test_cli_compose_verifies_and_writes_manifest(world, capsys):
    name, root, paths = world
    out = root / "cli.safetensors"
    code = main(["compose", *paths, "-o", str(out), "--base", name, "--json", "--overwrite"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["max_abs_diff"] <= 1e-5 and result["format"] == "unet"
    assert [a["concept"] for a in result["adapters"]] == ["c0", "c1", "c2"]
    from safetensors import safe_open
    with safe_open(str(out), "pt") as f:
        assert json.loads(f.metadata()["duge_manifest"])["adapters"][1]["sha256"] == result["adapters"][1]["sha256"]
    # the manifest is padded so the tensor data keeps the base file's page alignment (layout.py)
    from duge_lora.formats import UNET_WEIGHTS, base_folder
    from duge_lora.layout import PAGE, data_start
    from duge_lora.models import resolve_base
    base_file = base_folder(resolve_base(name)[0]) / UNET_WEIGHTS
    assert (data_start(out) - data_start(base_file)) % PAGE == 0


def test_header_size_is_what_safetensors_writes(tmp_path):
    from safetensors.torch import save_file

    from duge_lora.layout import aligned_metadata, data_start, header_size
    state = {"b.weight": torch.zeros(3, 5, dtype=torch.float16), "a.weight": torch.ones(7, dtype=torch.float32),
             "c": torch.zeros(2, dtype=torch.int64), "d": torch.zeros(4, dtype=torch.bfloat16), "e": torch.zeros(1, dtype=torch.bool)}
    meta = {"format": "pt", "duge_manifest": json.dumps({"concept": 'Mickey "Mouse" \\ é\n', "w": [1, 0.5]})}
    save_file(state, str(tmp_path / "x.safetensors"), metadata=meta)
    assert data_start(tmp_path / "x.safetensors") == 8 + header_size(state, meta)
    like = tmp_path / "like.safetensors"                  # a file whose data starts somewhere else
    save_file({"w" * 300: torch.zeros(1)}, str(like))
    padded = aligned_metadata(state, meta, "duge_manifest", like)
    save_file(state, str(tmp_path / "y.safetensors"), metadata=padded)
    assert (data_start(tmp_path / "y.safetensors") - data_start(like)) % 4096 == 0
    assert json.loads(padded["duge_manifest"]) == json.loads(meta["duge_manifest"])


def test_compose_bad_input(world, tmp_path, capsys):
    name, root, paths = world
    pickle = tmp_path / "x.bin"
    torch.save({}, pickle)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "pytorch_lora_weights.safetensors").write_bytes(b"\x00" * 64)
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep")
    cases = [([paths[0], str(pickle)], "pickle", 3), ([paths[0], str(corrupt)], "not a readable", 3),
             ([f"{paths[0]}:heavy"], "not a number", 2), ([paths[0], paths[0]], "listed twice", 3),
             ([str(tmp_path / "nope")], "No adapter", 3)]
    for args, message, exit_code in cases:
        code = main(["compose", *args, "-o", str(tmp_path / "o.safetensors"), "--base", name])
        err = capsys.readouterr().err
        assert code == exit_code and message in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / "o.safetensors").exists()
    assert main(["compose", paths[0], "-o", str(existing), "--base", name]) == 4
    assert existing.read_bytes() == b"keep"
    # remove an adapter the model does not contain
    merged = root / "only0.safetensors"
    write_output(compose(load_items([paths[0]]), "sum", "unet"), load_base(name, device="cpu").source, merged)
    code = main(["compose", str(merged), "--remove", paths[1], "-o", str(tmp_path / "r.safetensors"), "--base", name])
    assert code == 3 and "does not contain" in capsys.readouterr().err


def test_adapters_for_different_bases_are_refused(tmp_path, tiny_sd):
    a = random_adapter(load_base("toy", device="cpu"), tmp_path / "toy", 0, "x")
    b = random_adapter(load_base(tiny_sd, device="cpu"), tmp_path / "tiny", 1, "y")
    with pytest.raises(DugeError, match="different bases"):
        compose(load_items([str(a), str(b)]))


def test_inspect_adapter_and_composed_model(world, capsys):
    name, root, paths = world
    assert main(["inspect", paths[1], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "adapter" and info["concept"] == "c1" and info["rank"] == 4 and info["targets"] == ["k", "v"]
    merged = root / "inspect.safetensors"
    write_output(compose(load_items(paths[:2]), "sum", "unet"), load_base(name, device="cpu").source, merged)
    assert main(["inspect", str(merged), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "composed model" and [a["concept"] for a in info["adapters"]] == ["c0", "c1"]


def test_lineage_warnings(tmp_path, tiny_sd):
    from duge_lora.compose import check_items
    base = load_base(tiny_sd, device="cpu")
    first = load_items([str(random_adapter(base, tmp_path / "first", 0, "first"))])[0]
    second = random_adapter(base, tmp_path / "second", 1, "second",
                            parents=[{"order": 1, "concept": "first", "sha256": first.adapter.sha256}])
    assert check_items(load_items([str(tmp_path / "first"), str(second)])) == []
    missing = check_items(load_items([str(second)]))
    assert len(missing) == 1 and "not in this composition" in missing[0]
    late = check_items(load_items([str(second), str(tmp_path / "first")]))
    assert len(late) == 1 and "comes later" in late[0]


def test_sample_and_eval_stacks_are_compose_sums(world, tmp_path):
    """apply_to_base (what sample/eval use) equals the live peft stack; foreign adapters are refused."""
    from duge_lora.compose import apply_to_base
    name, root, paths = world
    ref = stacked(name, paths, [1.0, 0.5, 1.0])
    base = load_base(name, device="cpu")
    apply_to_base(base, [paths[0], f"{paths[1]}:0.5", paths[2]])
    assert (probe(base.pipe.unet) - ref).abs().max() <= 1e-5
    other = "toy" if name != "toy" else None
    if other:
        with pytest.raises(DugeError, match="another base"):
            apply_to_base(load_base(other, device="cpu"), [paths[0]])


def test_sample_with_weighted_adapters(tmp_path, capsys):
    base = load_base("toy", device="cpu")
    adapter = random_adapter(base, tmp_path / "a", 0, "c0")
    out = tmp_path / "g.png"
    code = main(["sample", "a red solid circle", "-n", "1", "-o", str(out), "--adapters", f"{adapter}:0.5", "--compare"])
    assert code == 0 and out.exists(), capsys.readouterr().err


def test_reference_adapters_fit_the_shipped_toy_model():
    from pathlib import Path

    from duge_lora.bench_config import DEFAULT_SEQUENCE
    from duge_lora.compose import apply_to_base
    from duge_lora.stack import stack_members
    members = stack_members(Path(__file__).parent.parent / "adapters" / "toy")
    assert tuple(m.name for m in members) == DEFAULT_SEQUENCE      # the bench's default sequence, its DUGE run
    comp = apply_to_base(load_base("toy", device="cpu"), [str(m) for m in members])
    assert comp.warnings == []            # each one's parents come before it
