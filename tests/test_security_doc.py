"""docs/security.md: at least 40 bad-input rows, each naming a test that exists; docs/conformance.md: every
test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def test_every_row_links_an_existing_test() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    table = text.split("## The bad-input table", 1)[1].split("## Faults", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 40
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(refs) >= len(rows)
    for row in rows:
        assert re.search(r"`tests/[\w/]+\.py::\w+`", row), row
    for path, name in refs:
        assert name in _functions(ROOT / path), f"{path}::{name} does not exist"


def test_every_test_the_conformance_table_names_exists() -> None:
    text = (ROOT / "docs" / "conformance.md").read_text()
    refs = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(refs) >= 40
    for path, name in refs:
        assert (ROOT / path).is_file(), f"{path} does not exist"
        if name:
            assert name in _functions(ROOT / path), f"{path}::{name} does not exist"
