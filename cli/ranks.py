"""Process entry points of the ranks the library starts (distributed.start_ranks): `python -m duge_lora_cli.ranks
bench DIR` runs bench_ranks.rank_main(DIR) and exits with its code."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    for var, value in (("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(var, value)
    if argv[:1] == ["bench"] and len(argv) == 2:
        from duge_lora.bench_ranks import rank_main

        return rank_main(Path(argv[1]))
    print(f"usage: python -m duge_lora_cli.ranks bench DIR (got {argv})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
