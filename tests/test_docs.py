"""Every code location the docs cite (`padm/...py:name`) must exist, so the docs cannot rot."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
REF = re.compile(r"`(padm/[\w/]+\.py):([\w.]+)`")


def references():
    refs = []
    for md in sorted(DOCS.glob("*.md")):
        refs += [(md.name, path, name) for path, name in REF.findall(md.read_text(encoding="utf-8"))]
    return refs


def test_docs_cite_code():
    assert len(references()) >= 15


@pytest.mark.parametrize("doc,path,name", references(), ids=lambda x: str(x))
def test_referenced_function_exists(doc, path, name):
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    obj = module
    for part in name.split("."):
        assert hasattr(obj, part), f"{doc}: {path}:{name} does not exist"
        obj = getattr(obj, part)
    assert callable(obj), f"{doc}: {path}:{name} is not a function or class"
