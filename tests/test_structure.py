"""The code stays a place a newcomer can find their way in (docs/architecture.md): small modules with one job
each, stated in their opening docstring; small functions; a library free of CLI concerns; dependencies that
point down (losses and merge import only torch)."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LIBRARY = sorted(p for p in (ROOT / "duge_lora").rglob("*.py"))
CLI = sorted((ROOT / "cli").glob("*.py"))
MAX_MODULE, MAX_FUNCTION = 350, 50


def body_length(node: ast.FunctionDef) -> int:
    """Lines of a function's body, its docstring left out (a typer command's signature is a declarative table)."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path", LIBRARY + CLI, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small_and_says_its_job(path):
    source = path.read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{path} has no opening docstring"
    assert len(source.splitlines()) <= MAX_MODULE
    long = [(n.name, body_length(n)) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_length(n) > MAX_FUNCTION]
    assert not long, long


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            names.add("." + (node.module or ""))
    return names


def test_library_has_no_cli_concerns():
    """The library raises errors that name its parameters (errors.param); the CLI renders them as flags. The model
    card (card.py) is a document for people, with a command line in it, so it may show flags."""
    for path in LIBRARY:
        source = path.read_text()
        assert not {"typer", "rich", "click", "duge_lora_cli"} & imports(path), path
        assert not re.search(r"\bprint\(|sys\.exit\(", source), f"{path} prints or exits"
        assert path.name == "card.py" or not re.search(r"""["'][^"'\n]*\s--[a-z][a-z-]+""", source), f"{path} spells out a CLI flag"


@pytest.mark.parametrize("name", ["losses.py", "merge.py", "metrics.py", "layout.py"])
def test_pure_maths_imports_no_model_code(name):
    assert imports(ROOT / "duge_lora" / name) <= {"__future__", "torch", "math", "dataclasses", "typing", "numpy",
                                                  "json", "struct", "pathlib", ".toy.world", "torchmetrics"}
