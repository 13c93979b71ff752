"""duge-lora: continual concept unlearning for text-to-image diffusion models.

One small LoRA adapter per unlearning request, trained with the DUGE losses (Thakral et al.,
arXiv 2503.13769), composed into a cumulatively unlearned model. This package is the library;
the command line lives in `duge_lora_cli` (the repository's cli/ folder).
"""
__version__ = "0.1.0"
