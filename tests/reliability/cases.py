"""The fault suite's cases: each a command line that must fail (or hold) in one stated way.

A case is run in-process through the CLI's entry point (test_faults.py). It passes when the exit code is the
expected one, stderr is one `error:` sentence without a traceback that names the culprit (every string in
`names`, after formatting), and every file that existed before is byte-identical afterwards, with no new files
(no temp file, no partial output) beyond those listed in `creates`.

Placeholders: {a1} {a2} good adapters (circle, then red trained after it), {model} their composed UNet file,
{pipe} the same as a pipeline folder, {lora} as one LoRA file, {stack} a stack of both, {t} the case's own empty
folder, {bad} what the case's `setup` made there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from . import files as F

USAGE, BAD_FILE, ENVIRONMENT, FAILED, INTERRUPTED = 2, 3, 4, 1, 130


@dataclass
class Case:
    family: str
    name: str
    argv: list[str]
    code: int
    names: list[str]                                   # strings the message must contain (formatted)
    setup: Callable | None = None                      # setup(ctx) -> makes ctx.bad
    creates: list[str] = field(default_factory=list)   # outputs a passing case may create (formatted)
    env: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.family}: {self.name}"


CASES: list[Case] = []


def case(family, name, argv, code, names, setup=None, **kw) -> None:
    CASES.append(Case(family, name, argv.split() if isinstance(argv, str) else argv, code,
                      [names] if isinstance(names, str) else names, setup, **kw))


TRAIN = "train --concept circle --steps 2 -o {t}/out"
COMPOSE = "compose {a1} {a2} -o {t}/out.safetensors"

# ----------------------------------------------------------------------------- options
for opt, value, names in [
    ("--steps", "0", "--steps"), ("--batch", "0", "--batch"), ("--rank", "0", "--rank"), ("--rank", "-3", "--rank"),
    ("--rank", "10000", "--rank"), ("--alpha", "0", "--alpha"), ("--alpha", "-1", "--alpha"), ("--lr", "nan", "--lr"),
    ("--lr", "-1", "--lr"), ("--lr", "0", "--lr"), ("--lr", "inf", "--lr"), ("--weight", "bogus=1", "bogus"),
    ("--weight", "pp", "pp"), ("--weight", "pp=nan", "pp"), ("--weight", "pp=-1", "pp"),
    ("--targets", "bogus", "bogus"), ("--targets", ",", "--targets"), ("--method", "bogus", "bogus"),
    ("--init", "bogus", "bogus"), ("--mixed-precision", "bogus", "bogus"), ("--device", "bogus", "bogus"),
    ("--steps", "1000000000", "--steps"), ("--checkpoint-every", "-1", "--checkpoint-every"),
    ("--seed", "-1", "--seed"), ("--batch", "100000", "--batch"),
]:
    case("options", f"train {opt} {value}", TRAIN.split() + [opt, value], USAGE, names)
case("options", "train without --concept", "train --steps 2", USAGE, "--concept")
case("options", "train with an empty --concept", ["train", "--concept", "", "-o", "{t}/out"], USAGE, "--concept")
case("options", "train --concept of two unquoted words", "train --concept red circle -o {t}/out", USAGE, "circle")
case("options", "train --concept the toy does not know", "train --concept dragon -o {t}/out", USAGE, "dragon")
case("options", "train --anchor equal to the concept", TRAIN + " --anchor circle", USAGE, "--anchor")
case("options", "train --anchor with an unknown word", TRAIN + " --anchor dragon", USAGE, "dragon")
case("options", "train --preserve the concept itself", TRAIN + " --preserve circle", USAGE, "--preserve")
case("options", "train --after and --stack together", TRAIN + " --after {a1} --stack {t}/s", USAGE, "--stack")
case("options", "train an unknown option", "train --stepz 3", USAGE, "--stepz")
case("options", "an unknown command", "frobnicate", USAGE, "frobnicate")
case("options", "train --mixed-precision fp16 on a CPU", TRAIN + " --mixed-precision fp16 --device cpu", USAGE, "fp16")
case("options", "train --device cuda without a GPU", TRAIN + " --device cuda", ENVIRONMENT, "cuda")
for name, argv, names in [
    ("compose without adapters", "compose -o {t}/out.safetensors", "adapters"),
    ("compose --method bogus", COMPOSE + " --method bogus", "bogus"),
    ("compose --method svd --rank -3", COMPOSE + " --method svd --rank -3", "--rank"),
    ("compose --method svd --rank 0", COMPOSE + " --method svd --rank 0", "--rank"),
    ("compose --rank without --method svd", COMPOSE + " --rank 2", "--rank"),
    ("compose --format bogus", COMPOSE + " --format bogus", "bogus"),
    ("compose --device bogus", COMPOSE + " --device bogus", "bogus"),
    ("compose ADAPTER:bogus", "compose {a1}:bogus -o {t}/out.safetensors", "bogus"),
    ("compose ADAPTER:nan", "compose {a1}:nan -o {t}/out.safetensors", "nan"),
    ("compose --remove with two models", "compose {model} {a1} --remove {a2} -o {t}/out.safetensors", "--remove"),
    ("compose --base that is no base", "compose {a1} {a2} -o {t}/out.safetensors --base bogus:thing", "bogus:thing"),
]:
    case("options", name, argv, USAGE if "--base" not in name else BAD_FILE, names)
for argv, names in [
    ("sample circle -n 0 -o {t}/g.png", "--num-images"), ('sample -o {t}/g.png --steps 0 "a red circle"', "--steps"),
    ("sample circle --guidance nan -o {t}/g.png", "--guidance"), ("sample dragon -o {t}/g.png", "dragon"),
    ("sample circle --compare -o {t}/g.png", "--compare"), ("sample -o {t}/g.png", "prompts"),
    ("eval --concept dragon", "dragon"), ("eval -n 0", "--num-images"),
    ("bench --sequence circle,circle -o {t}/b", "--sequence"), ("bench --methods bogus -o {t}/b", "bogus"),
    ("bench --seeds a,b -o {t}/b", "--seeds"), ("bench --ablation bogus -o {t}/b", "bogus"),
    ("bench --steps 0 -o {t}/b", "--steps"), ("bench --workers 0 -o {t}/b", "--workers"),
    ("bench --sequence dragon -o {t}/b", "dragon"), ("inspect", "path"), ("toy bogus", "bogus"),
]:
    case("options", argv.replace(" -o {t}/g.png", "").replace(" -o {t}/b", ""), argv, USAGE, names)

# ----------------------------------------------------------------------------- real bases (issue 14)
REAL = "train --base {tiny} --concept cat --steps 1 -o {t}/out"
for name, argv, code, names, setup in [
    ("train --prompts: a file without {}", REAL + " --prompts {bad}", BAD_FILE, ["{bad}", "{{}}"],
     lambda c: c.bad.write_text("a photo of a cat\n")),
    ("train --prompts: an empty file", REAL + " --prompts {bad}", BAD_FILE, "{bad}", lambda c: c.bad.write_text("\n# none\n")),
    ("train --prompts: a missing file", REAL + " --prompts {t}/none.txt", BAD_FILE, "{t}/none.txt", None),
    ("train --kind bogus", REAL + " --kind bogus", USAGE, "bogus", None),
    ("train --kind on the toy model", TRAIN + " --kind style", USAGE, "--kind", None),
    ("train --base: a folder that is not a pipeline", "train --base {a1} --concept cat -o {t}/out", BAD_FILE,
     ["{a1}", "model_index.json"], None),
    ("eval on a real base without --judge", "eval --base {tiny} --concept cat -n 1", USAGE, "--judge", None),
    ("eval --judge on the toy model", "eval --judge {clip} -n 1", USAGE, "--judge", None),
    ("eval --judge: neither CLIP nor a classifier", "eval --base {tiny} --concept cat -n 1 --judge {bert}", BAD_FILE,
     ["{bert}", "bert"], None),
    ("eval --judge: a missing folder", "eval --base {tiny} --concept cat -n 1 --judge {t}/none", BAD_FILE, "{t}/none", None),
    ("eval --judge: a Hub id offline, not cached", "eval --base {tiny} --concept cat -n 1 --judge nobody/no-judge",
     ENVIRONMENT, "nobody/no-judge", None),
    ("eval --judge: a class the classifier does not have", "eval --base {tiny} --concept chruch -n 1 --judge {classifier}",
     USAGE, ["chruch", "church"], None),
    ("bench on a real base without --sequence", "bench --quick --base {tiny} --judge {clip} -o {t}/b", USAGE,
     "--sequence", None),
    ("bench on a real base without --judge", "bench --quick --base {tiny} --sequence cat -o {t}/b", USAGE, "--judge", None),
]:
    case("real bases", name, argv, code, names, setup)

# ----------------------------------------------------------------------------- bad files (adapters and models)
BAD_ADAPTERS = [
    ("a missing adapter folder", None, "{t}/nothing"),
    ("an empty adapter folder", lambda c: c.t.joinpath("bad").mkdir(), "{bad}"),
    ("a truncated weights file", lambda c: F.bytes_of(c.a1, c.bad, keep=0.5), "{bad}"),
    ("an empty weights file", lambda c: F.bytes_of(c.a1, c.bad, content=b""), "{bad}"),
    ("a text file as weights", lambda c: F.bytes_of(c.a1, c.bad, content=b"hello, world\n" * 10), "{bad}"),
    ("random bytes as weights", lambda c: F.bytes_of(c.a1, c.bad, content=bytes(range(256)) * 8), "{bad}"),
    ("a header record that is not JSON", lambda c: F.adapter_with(c.a1, c.bad, header=lambda m: m.update(duge="{oops")), "{bad}"),
    ("LoRA metadata that is not JSON", lambda c: F.adapter_with(c.a1, c.bad, header=lambda m: m.update(lora_adapter_metadata="[")), "{bad}"),
    ("a weight that is not a UNet LoRA", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.extra_key), "{bad} text_encoder"),
    ("half of a factor pair missing", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.drop_b), "{bad}"),
    ("factors of different ranks", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.wrong_rank), "{bad}"),
    ("a factor of the wrong width for the base", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.wrong_in_dim), "{bad}"),
    ("a module the base does not have", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.unknown_module), "{bad} down_blocks.9"),
    ("a NaN weight", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.set_value(float("nan"))), "{bad}"),
    ("an infinite weight", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.set_value(float("inf"))), "{bad}"),
    ("integer weights", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.integers), "{bad}"),
    ("a one-dimensional factor", lambda c: F.adapter_with(c.a1, c.bad, tensors=F.one_dim), "{bad}"),
    ("a pickle (.bin) instead of safetensors", lambda c: c.bad.with_suffix(".bin").write_bytes(b"\x80\x04K\x01."), "{t}/bad.bin"),
    ("a composed model where an adapter is expected", None, "{model}"),
]
USES = {
    "compose": (["compose", "{ref}", "-o", "{t}/out.safetensors"], ["compose", "{a1}", "{ref}", "-o", "{t}/out.safetensors"]),
    "inspect": (["inspect", "{ref}"],),
    "train --after": (TRAIN.split() + ["--after", "{ref}"],),
    "sample --adapters": (["sample", "circle", "-n", "1", "-o", "{t}/g.png", "--adapters", "{ref}"],),
    "eval --adapters": (["eval", "-n", "1", "--adapters", "{ref}"],),
}
PER_USE = {"a truncated weights file", "a NaN weight", "a factor of the wrong width for the base",
           "a pickle (.bin) instead of safetensors", "a missing adapter folder"}
for what, setup, named in BAD_ADAPTERS:
    ref, extra = named.split(" ")[0], named.split(" ")[1:]
    uses = USES if what in PER_USE else {"compose": USES["compose"][:1], "inspect": USES["inspect"]}
    for use, argvs in uses.items():
        if use == "inspect" and what in ("a composed model where an adapter is expected",
                                         "a factor of the wrong width for the base", "a module the base does not have"):
            continue
        argv = [a.replace("{ref}", ref) for a in argvs[0]]
        names = [ref] + extra
        case("files", f"{use}: {what}", argv, BAD_FILE, names, setup)
case("files", "compose --remove from a truncated model", "compose {bad} --remove {a2} -o {t}/out.safetensors", BAD_FILE,
     "{bad}", lambda c: F.bytes_of(c.model, c.bad, keep=0.3))
case("files", "compose --remove from a model without a manifest", "compose {bad} --remove {a2} -o {t}/out.safetensors",
     BAD_FILE, "{bad}", lambda c: F.model_without_manifest(c.model, c.bad))
case("files", "compose --remove of an adapter the model does not hold", "compose {t}/m.safetensors --remove {a2} -o "
     "{t}/out.safetensors", BAD_FILE, "{a2}", lambda c: __import__("shutil").copy(c.only_circle, c.t / "m.safetensors"))
case("files", "compose --remove with an adapter as the model", "compose {a1} --remove {a2} -o {t}/out.safetensors",
     BAD_FILE, "{a1}")
case("files", "compose --remove from a pipeline without UNet weights",
     "compose {bad} --remove {a2} -o {t}/out", BAD_FILE, "{bad}", lambda c: c.bad.mkdir())
case("files", "compose --remove from a model with a NaN weight", "compose {t}/m.safetensors --remove {a2} -o "
     "{t}/out.safetensors", BAD_FILE, ["{t}/m.safetensors", "NaN"], lambda c: F.model_with_nan(c.model, c.t / "m.safetensors"))
case("files", "a stack.json that is not JSON", TRAIN + " --stack {bad}", BAD_FILE, "stack.json",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, raw="{nope"))
case("files", "a stack.json listing a missing member", TRAIN + " --stack {bad}", BAD_FILE, "ghost",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, names=["circle", "ghost"]))
case("files", "a stack.json whose adapters are not a list", TRAIN + " --stack {bad}", BAD_FILE, "stack.json",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, raw='{"format": "duge-lora-stack/1", "adapters": "circle"}'))
case("files", "a stack.json of another format", TRAIN + " --stack {bad}", BAD_FILE, "stack.json",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, raw='{"format": "other/9", "adapters": ["circle"]}'))
case("files", "a --base folder that is not a pipeline", "sample circle -o {t}/g.png --base {bad}", BAD_FILE, "{bad}",
     lambda c: c.bad.mkdir())
case("files", "a --base whose model_index.json is not JSON", "sample circle -o {t}/g.png --base {bad}", BAD_FILE,
     "{bad}", lambda c: (c.bad.mkdir(), c.bad.joinpath("model_index.json").write_text("{")))

# ----------------------------------------------------------------------------- records


def record_edit(fn):
    return lambda c: F.adapter_with(c.a1, c.bad, record=fn)


for what, fn in [
    ("a record of another schema", lambda r: r.update(format="something-else/9")),
    ("a record of a newer schema version", lambda r: r.update(format="duge-lora-adapter/2")),
    ("a record whose rank is a string", lambda r: r["lora"].update(rank="four")),
    ("a record whose request is a list", lambda r: r.update(request=["circle"])),
    ("a record whose request has no concept", lambda r: r["request"].pop("concept")),
    ("a record whose parents are not a list", lambda r: r.update(parents="circle")),
    ("a record whose parent order is a string", lambda r: r.update(parents=[{"order": "first", "concept": "x", "sha256": "0" * 64}])),
    ("a record whose targets are unknown", lambda r: r["lora"].update(targets=["zz"])),
    ("a record whose loss weights are a string", lambda r: r.update(loss_weights="heavy")),
    ("a record whose base is a string", lambda r: r.update(base="toy")),
    ("a record whose fingerprint is a number", lambda r: r["base"].update(fingerprint=12)),
    ("a record that is a list", None),
]:
    setup = record_edit(fn) if fn else (lambda c: F.adapter_with(c.a1, c.bad, header=lambda m: m.update(duge="[1, 2]")))
    case("records", f"compose: {what}", "compose {bad} -o {t}/out.safetensors", BAD_FILE, "{bad}", setup)
case("records", "compose: an adapter made for another base", "compose {bad} -o {t}/out.safetensors", BAD_FILE,
     ["{bad}", "another base"], record_edit(lambda r: r["base"].update(fingerprint="0123456789abcdef")))
case("records", "train --after: an adapter made for another base", TRAIN + " --after {bad}", BAD_FILE,
     ["{bad}", "another base"], record_edit(lambda r: r["base"].update(fingerprint="0123456789abcdef")))
case("records", "compose: the same adapter twice", "compose {a1} {a1} -o {t}/out.safetensors", BAD_FILE, ["{a1}", "twice"])
case("records", "compose: adapters of different targets", "compose {a1} {bad} -o {t}/out.safetensors", BAD_FILE,
     "--targets", lambda c: F.adapter_with(c.a1, c.bad, tensors=lambda t: {k: v for k, v in t.items() if "to_v" not in k},
                                           record=lambda r: r["lora"].update(targets=["k"], target_modules=["attn2.to_k"])))

# ----------------------------------------------------------------------------- paths
case("paths", "compose into a missing folder", "compose {a1} -o {t}/no/such/out.safetensors", ENVIRONMENT, "{t}/no/such")
case("paths", "compose over an existing file", "compose {a1} -o {bad}", ENVIRONMENT, ["{bad}", "--overwrite"],
     lambda c: c.bad.write_text("keep me"))
case("paths", "train over an existing folder", TRAIN.replace("{t}/out", "{bad}"), ENVIRONMENT, ["{bad}", "--overwrite"],
     lambda c: (c.bad.mkdir(), c.bad.joinpath("keep").write_text("keep me")))
case("paths", "sample over an existing picture", "sample circle -o {bad}", ENVIRONMENT, ["{bad}", "--overwrite"],
     lambda c: c.bad.with_suffix(".png").write_bytes(b"png"))
case("paths", "compose an adapter onto itself", "compose {a1} -o {a1} --overwrite", USAGE, ["{a1}", "input"])
case("paths", "compose onto an input's weights file",
     "compose {a1} {a2} -o {a2}/pytorch_lora_weights.safetensors --overwrite", USAGE, ["{a2}", "input"])
case("paths", "compose --remove onto the model itself", "compose {model} --remove {a2} -o {model} --overwrite", USAGE,
     ["{model}", "input"])
case("paths", "train onto its own parent", TRAIN.replace("{t}/out", "{a1}") + " --after {a1} --overwrite", USAGE,
     ["{a1}", "input"])
case("paths", "compose under a regular file", "compose {a1} -o {bad}/out.safetensors", ENVIRONMENT, "{bad}",
     lambda c: c.bad.write_text("a file"))
case("paths", "train --stack that is a file", TRAIN + " --stack {bad}", USAGE, "{bad}", lambda c: c.bad.write_text("x"))
case("paths", "train --stack that is another folder", TRAIN + " --stack {bad}", USAGE, "{bad}",
     lambda c: (c.bad.mkdir(), c.bad.joinpath("notes.txt").write_text("x")))
case("paths", "sample -o an existing folder", "sample circle -o {bad} --overwrite", ENVIRONMENT, "{bad}",
     lambda c: c.bad.with_suffix(".png").mkdir())
case("paths", "inspect a missing path", "inspect {t}/nothing", BAD_FILE, "{t}/nothing")
case("paths", "bench into a folder that is not a bench", "bench --quick -o {bad}", ENVIRONMENT, "{bad}",
     lambda c: (c.bad.mkdir(), c.bad.joinpath("mine.txt").write_text("x")))
case("paths", "toy build over an existing folder", "toy build -o {bad}", ENVIRONMENT, ["{bad}", "--overwrite"],
     lambda c: c.bad.mkdir())

# ----------------------------------------------------------------------------- environment
case("environment", "a --base Hub id while offline", "sample circle -o {t}/g.png --base someone/no-such-model",
     ENVIRONMENT, ["someone/no-such-model", "offline"], env={"HF_HUB_OFFLINE": "1"})
case("environment", "a --base Hub id with a cache that is a file", "sample circle -o {t}/g.png --base someone/model",
     ENVIRONMENT, "someone/model", lambda c: c.bad.write_text("x"), env={"HF_HUB_CACHE": "{bad}", "HF_HUB_OFFLINE": "1"})
case("environment", "a bench cache folder under a file", "bench --quick -o {bad}/b", ENVIRONMENT, "{bad}",
     lambda c: c.bad.write_text("x"))

case("environment", "a data cache that is a file", TRAIN, ENVIRONMENT, ["{bad}", "DUGE_LORA_CACHE"],
     lambda c: c.bad.write_text("x"), env={"DUGE_LORA_CACHE": "{bad}"})
case("files", "compose: finite factors whose sum overflows", "compose {bad} -o {t}/out.safetensors", FAILED,
     ["verification", "{t}/out.safetensors.rejected"], lambda c: F.adapter_with(c.a1, c.bad, tensors=F.scaled(1e20)),
     creates=["{t}/out.safetensors.rejected"])

# ----------------------------------------------------------------------------- security
case("security", "a stack.json member outside the stack (../)", TRAIN + " --stack {bad}", BAD_FILE, "../",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, names=["circle", "../escape"]))
case("security", "a stack.json member by absolute path", TRAIN + " --stack {bad}", BAD_FILE, "{a2}",
     lambda c: F.stack_of({"circle": c.a1}, c.bad, names=["circle", str(c.a2)]))
case("security", "a stack member that is a symlink out of the stack", TRAIN + " --stack {bad}", BAD_FILE, "red",
     lambda c: (F.stack_of({"circle": c.a1}, c.bad, names=["circle", "red"]), c.bad.joinpath("red").symlink_to(c.a2)))
case("security", "a pickle base (.bin weights only)", "sample circle -o {t}/g.png --base {bad}", BAD_FILE, "pickle",
     lambda c: pickle_base(c))
case("security", "an adapter weights file that is a symlink out of its folder", "compose {bad} -o {t}/out.safetensors",
     BAD_FILE, "symlink", lambda c: symlinked_weights(c))


def pickle_base(c) -> None:
    import shutil

    from duge_lora import toy
    shutil.copytree(toy.PIPELINE_DIR, c.bad)
    for f in c.bad.rglob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))


def symlinked_weights(c) -> None:
    import shutil
    shutil.copytree(c.a1, c.bad)
    (c.bad / F.WEIGHTS).unlink()
    (c.bad / F.WEIGHTS).symlink_to(c.a1 / F.WEIGHTS)


def fmt(value: str, ctx) -> str:
    return value.format(**{k: str(v) for k, v in vars(ctx).items()})


def ids() -> list[str]:
    seen, out = set(), []
    for c in CASES:
        assert c.id not in seen, c.id
        seen.add(c.id)
        out.append(c.id)
    return out


def families() -> dict[str, int]:
    out: dict[str, int] = {}
    for c in CASES:
        out[c.family] = out.get(c.family, 0) + 1
    return out


def dump() -> str:
    return json.dumps([{"family": c.family, "name": c.name, "argv": c.argv, "code": c.code} for c in CASES], indent=1)


if __name__ == "__main__":
    print(len(CASES), families())
