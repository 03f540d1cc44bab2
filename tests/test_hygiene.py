"""The project's own bookkeeping: what it declares is what it uses."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Declared but never imported, on purpose: the reason is the value.
NOT_IMPORTED = {"tzdata": "IANA zone data read by zoneinfo where the system has none"}


def _imported_top_level_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "dialer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_runtime_dependency_is_imported_by_the_package() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["dependencies"]
    provides: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            provides.setdefault(_normalised(dist), set()).add(module)
    imported = _imported_top_level_names()

    unused = []
    for requirement in declared:
        name = _normalised(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        if name in NOT_IMPORTED:
            continue
        modules = provides.get(name)
        assert modules, f"{name} is declared but not installed in this environment"
        if not modules & imported:
            unused.append(name)

    assert unused == [], f"declared in pyproject.toml, never imported by dialer/: {unused}"
