"""The README.md model card of an adapter folder (Hugging Face Hub conventions: YAML front matter + prose)."""
from __future__ import annotations


def adapter_card(record: dict) -> str:
    req, base = record["request"], record["base"]
    parents = record.get("parents") or []
    lineage = "\n".join(f"{p['order']}. `{p['concept']}` (sha256 {p['sha256'][:12]}...)" for p in parents) or "none: this is the first request."
    weights = ", ".join(f"{k}={v:g}" for k, v in record["loss_weights"].items() if isinstance(v, (int, float)))
    losses = ", ".join(f"{k} {v:.4g}" for k, v in record.get("final_losses", {}).items())
    modules = ", ".join(record["lora"]["target_modules"]) + (" (ff.net.2 only below the latent's full resolution)"
                                                             if "ff-low" in record["lora"].get("targets", ()) else "")
    base_model = base["name"] if "/" in base["name"] and not base["name"].startswith((".", "/")) else None
    front = ["---", "library_name: diffusers", "tags:", "- lora", "- concept-unlearning", "- duge-lora",
             "- text-to-image"] + ([f"base_model: {base_model}"] if base_model else []) + ["---", ""]
    return "\n".join(front) + f"""# duge-lora adapter: erase "{req['concept']}"

A LoRA adapter that removes **{req['concept']}** from `{base['name']}` (base fingerprint `{base['fingerprint']}`),
drawing **{req['anchor'] or 'the empty prompt'}** instead, while keeping {', '.join(req['preserve']) or 'related concepts'} intact.
Trained by duge-lora {record['duge_lora_version']} with the `{record['method']}` objective
(DUGE: cross-attention, prior-preservation and regularization losses; arXiv 2503.13769).

- synonyms also erased: {', '.join(req['synonyms']) or 'none given'}
- LoRA: rank {record['lora']['rank']}, alpha {record['lora']['alpha']:g}, on {modules}
- training: {record['hyperparameters']['steps']} steps, lr {record['hyperparameters']['lr']:g}, seed {record['hyperparameters']['seed']}, {record['seconds']:.0f} s
- loss weights: {weights}
- final losses: {losses}

## Earlier adapters (this one was trained on top of them, in this order)
{lineage}

## Use it
With plain diffusers, load the earlier adapters first, then this one, all at weight 1:
```python
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("{base['source'] if not base_model else base_model}")
pipe.load_lora_weights("path/to/this/folder", adapter_name="erase")
```
With duge-lora: `duge-lora sample "..." --adapters <earlier adapters> path/to/this/folder`, or merge a stack
with `duge-lora compose`.
"""
