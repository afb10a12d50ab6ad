"""The package layout keeps its promises: imports point downward, the engine is task-free, and a
task stays small.  (Structural guards: each fails when someone breaks the split.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PADM = Path(__file__).resolve().parents[1] / "padm"


def imports(path: Path) -> set[str]:
    """Every padm module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "padm" or m.startswith("padm.")}


def files(folder: str) -> list[Path]:
    return sorted((PADM / folder).rglob("*.py"))


# layer -> what it may import from padm (besides padm itself (its version), padm.errors and padm.fileio)
ALLOWED = {
    "ops": ("padm.ops",),
    "data": ("padm.data",),
    "unfolding": ("padm.unfolding", "padm.ops"),
    "engine": ("padm.engine", "padm.unfolding", "padm.ops", "padm.data"),
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_downward(layer):
    for path in files(layer):
        for module in imports(path):
            ok = module in ("padm", "padm.errors", "padm.fileio") or module.startswith(ALLOWED[layer])
            assert ok, f"{path.relative_to(PADM.parent)} imports {module}"


def test_the_task_free_core_imports_no_task():
    core = [p for p in files("unfolding") if "tasks" not in p.relative_to(PADM / "unfolding").parts]
    assert len(core) >= 8
    for path in core:
        bad = [m for m in imports(path) if m.startswith("padm.unfolding.tasks") and m != "padm.unfolding.tasks.base"]
        assert not bad, f"{path.name} imports {bad}"


def test_tasks_do_not_import_each_other():
    tasks = PADM / "unfolding" / "tasks"
    for folder in (p for p in tasks.iterdir() if p.is_dir() and p.name != "__pycache__"):
        for path in folder.rglob("*.py"):
            others = [m for m in imports(path) if m.startswith("padm.unfolding.tasks.")
                      and m.split(".")[3] not in (folder.name, "base", "image")]
            assert not others, f"{path.relative_to(PADM.parent)} imports {others}"


WORDS = re.compile(r"rain(?!ing\b)|blur|nois", re.IGNORECASE)


def test_the_engine_mentions_no_task():
    """Training, checkpoints, validation and inference know tasks only through the Task interface."""
    hits = []
    for path in files("engine"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = re.sub(r"(?i)train", "", line)  # "train" is not "rain"
            if WORDS.search(text):
                hits.append(f"{path.name}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)


def code_lines(path: Path) -> int:
    """Lines of code: not blank, not a comment, not inside a docstring."""
    source = path.read_text(encoding="utf-8")
    doc = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc)


def test_the_denoise_task_is_small():
    total = sum(code_lines(p) for p in (PADM / "unfolding" / "tasks" / "denoise").glob("*.py"))
    assert total <= 120, f"the denoise task is {total} lines of code"
