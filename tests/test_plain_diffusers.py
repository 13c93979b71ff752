"""Files that work in plain diffusers as people write it: the README's snippet, run as written, and a composed
pipeline folder loaded with a bare from_pretrained (no dtype argument)."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from duge_lora_cli.main import main

ROOT = Path(__file__).parent.parent


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return next(b for b in blocks if "from_pretrained" in b)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_the_readme_snippet_generates_an_image_as_written(tmp_path):
    code = readme_snippet().replace('"duge_lora/toy/assets/pipeline"', repr(str(ROOT / "duge_lora/toy/assets/pipeline")))
    code = code.replace('"adapters/toy/circle"', repr(str(ROOT / "adapters/toy/circle")))
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = np.asarray(Image.open(tmp_path / "no-circle.png"))
    assert image.shape == (32, 32, 3) and image.std() > 0


def test_a_composed_pipeline_folder_generates_with_a_bare_from_pretrained(tmp_path):
    folder = tmp_path / "unlearned"
    assert main(["compose", str(ROOT / "adapters/toy/circle"), "--format", "pipeline", "-o", str(folder),
                 "--no-verify", "--json"]) == 0
    proc = run_python("from diffusers import StableDiffusionPipeline\n"
                      f"pipe = StableDiffusionPipeline.from_pretrained({str(folder)!r})\n"
                      "pipe('a red circle', num_inference_steps=2).images[0].save('x.png')\n", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "x.png").exists()
