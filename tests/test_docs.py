"""The docs are checked, not just named.

1. Every code location the docs cite (`padm/...py:name`) exists.
2. Every row of an equation table (a table with a ``check`` column) names a numeric check from
   ``tests/doc_checks.py``: a call of the cited code whose result the equation predicts.  The check
   runs here, so an equation that stops describing its code fails the suite.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from doc_checks import CHECKS

DOCS = Path(__file__).resolve().parents[1] / "docs"
REF = re.compile(r"`(padm/[\w/]+\.py):([\w.]+)`")


def references():
    refs = []
    for md in sorted(DOCS.glob("*.md")):
        refs += [(md.name, path, name) for path, name in REF.findall(md.read_text(encoding="utf-8"))]
    return refs


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def equation_rows():
    """(doc, equation cell, check cell) of every row of every table whose header has a ``check`` column."""
    rows = []
    for md in sorted(DOCS.glob("*.md")):
        column = None
        for line in md.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("|"):
                column = None
                continue
            cells = _cells(line)
            if column is None:
                column = cells.index("check") if "check" in cells else -1
            elif column >= 0 and not set(line.replace("|", "").strip()) <= set("-: "):
                rows.append((md.name, cells[0], cells[column] if column < len(cells) else ""))
    return rows


def test_docs_cite_code():
    assert len(references()) >= 15


def test_equation_tables_exist_and_every_row_names_a_check():
    rows = equation_rows()
    assert {doc for doc, _, _ in rows} >= {"unfolding.md", "tasks.md"}
    assert len(rows) >= 20
    for doc, eq, check in rows:
        assert re.fullmatch(r"`\w+`", check), f"{doc}: row {eq!r} names no check (`name` in the check column)"
        assert check.strip("`") in CHECKS, f"{doc}: row {eq!r} names {check}, not a function of tests/doc_checks.py"


@pytest.mark.parametrize("name", sorted({c.strip("`") for _, _, c in equation_rows()} & set(CHECKS)))
def test_equation_check_holds(name):
    CHECKS[name]()


@pytest.mark.parametrize("doc,path,name", references(), ids=lambda x: str(x))
def test_referenced_function_exists(doc, path, name):
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    obj = module
    for part in name.split("."):
        assert hasattr(obj, part), f"{doc}: {path}:{name} does not exist"
        obj = getattr(obj, part)
    assert callable(obj), f"{doc}: {path}:{name} is not a function or class"


TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def reliability_rows() -> list[tuple[str, list[tuple[str, str]]]]:
    """(fault, [(test file, test name)]) of every row of the README's fault table."""
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Reliability\n", 1)[1].split("\n## ", 1)[0]
    rows = [_cells(line) for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    return [(cells[0], TEST_REF.findall(cells[-1])) for cells in rows]


def test_every_fault_in_the_readme_names_tests_that_exist():
    import ast

    rows = reliability_rows()
    assert len(rows) >= 25
    for fault, tests in rows:
        assert tests, f"README fault {fault!r} names no test"
        for path, name in tests:
            source = DOCS.parent / path
            assert source.is_file(), f"{fault!r}: {path} does not exist"
            defined = {n.name for n in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
                       if isinstance(n, ast.FunctionDef)}
            assert name in defined, f"{fault!r}: {path} has no test {name}"
