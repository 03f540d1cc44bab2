"""Issue 10's hygiene: what the project declares is what it uses, and no module hands state
from one call to the next through a global; and no test reaches a private name of the package."""

from __future__ import annotations

import ast
import gc
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import tracemalloc
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import fresh_python

from dialer.sheets import reader as sheet_module
from dialer.sheets.contacts import RowPlan, build_contacts
from dialer.sheets.reader import iter_rows, open_sheet
from dialer.sheets.row_phone import PhoneColumns

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


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


def _rows(sheet: Any) -> list[tuple[int, list[str]]]:
    return [row for chunk in iter_rows(sheet) for row in chunk]


@pytest.fixture
def workbook_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the XLSX files opened from disk, in order."""
    real = sheet_module.CalamineWorkbook
    opened: list[str] = []

    class Counting:
        @staticmethod
        def from_path(path: str) -> Any:
            opened.append(Path(path).name)
            return real.from_path(path)

    monkeypatch.setattr(sheet_module, "CalamineWorkbook", Counting)
    return opened


def test_two_workbooks_opened_before_either_is_streamed_are_each_read_once(
    tmp_path: Path, workbook_reads: list[str]
) -> None:
    a = open_sheet(_xlsx(tmp_path / "a.xlsx", [["phone"], ["+14155550101"]]))
    b = open_sheet(_xlsx(tmp_path / "b.xlsx", [["phone"], ["+14155550102"]]))

    assert (_rows(a), _rows(b)) == ([(1, ["+14155550101"])], [(1, ["+14155550102"])])
    assert workbook_reads == ["a.xlsx", "b.xlsx"]


def test_a_workbook_changed_after_open_sheet_is_read_again_not_served_stale(
    tmp_path: Path, workbook_reads: list[str]
) -> None:
    path = _xlsx(tmp_path / "c.xlsx", [["phone"], ["+14155550101"]])
    sheet = open_sheet(path)
    _xlsx(path, [["phone"], ["+14155550199"], ["+14155550198"]])
    os.utime(path, ns=(1, 1))  # a changed mtime, whatever the clock's resolution

    assert _rows(sheet) == [(1, ["+14155550199"]), (2, ["+14155550198"])]
    assert workbook_reads == ["c.xlsx", "c.xlsx"]


def test_compiled_templates_kept_for_reuse_are_bounded_in_a_long_lived_process() -> None:
    def plan(i: int) -> RowPlan:
        return RowPlan(
            columns=("phone", "name"),
            phones=PhoneColumns((0,), ("phone",), None, "IN"),
            id_index=None,
            zone_index=None,
            first_line_source=f"Hello {{{{ name | upper }}}}, offer {i}",  # Jinja2, ~50 KB
            instruction_source=f"Offer {i}.",
            template_columns=(("name", 1),),
        )

    chunk = [(1, ["+917359043943", "Ann"])]

    def traced_after(templates: range) -> int:
        for i in templates:
            [contact] = build_contacts(plan(i), chunk)
            assert contact.first_line == f"Hello ANN, offer {i}"
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        warm = traced_after(range(40))
        grown = traced_after(range(40, 240)) - warm
    finally:
        tracemalloc.stop()

    # Kept without bound, 200 more compiled templates hold ~10 MB.
    assert grown < 2_000_000, f"{grown:,} bytes kept after 200 more templates"


def test_commands_other_than_run_and_the_fake_load_no_aiohttp(tmp_path: Path) -> None:
    """`dialer --help`, `validate` and `status` build every command's options, the fake's
    included; its aiohttp server costs ~0.15 s of start-up and belongs to the fake alone."""
    probe = (
        "import sys\n"
        "from dialer.cli import build_parser\n"
        "build_parser()\n"
        "from dialer import fake_tabbly\n"
        "assert fake_tabbly.DEFAULT_API_KEY\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sync_loads_no_geocoder_data(tmp_path: Path) -> None:
    """phonenumbers' geocoder data is ~95 MB resident: `dialer sync` (its memory bound is
    300 MB over 100,000 calls) never shows a country's name, so it must not load it; a name
    asked for still loads it."""
    probe = (
        "import sys\n"
        "import dialer.cli, dialer.commands.run, dialer.outcomes.sync, dialer.tabbly.call_logs\n"
        "import dialer.outcomes.matching, dialer.outcomes.shared_agent\n"
        "import dialer.outcomes.results_file, dialer.outcomes.writeback\n"
        "print('phonenumbers.geodata' in sys.modules)\n"
        "from dialer.sheets.countries import country_name\n"
        "print(country_name('US'))\n"
    )
    done = fresh_python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False", "United States"]


# Test files that still reach a private name of dialer, each waiting on the owner of the code
# it reaches into to give it a public seam. An entry no longer needed fails: the list only
# shrinks.
PRIVATE_NAMES_LEFT: dict[str, str] = {}
_DIALER_PATH = re.compile(r"dialer(?:\.\w+)*\.(_\w+)")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _attr_call(node: ast.Call) -> bool:
    """`getattr`, `setattr`, `delattr`, or `monkeypatch.setattr` and the like."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("getattr", "setattr", "delattr")


def _private_names(path: Path) -> list[str]:
    """The private dialer names a test file imports or reaches through an imported name:
    `from dialer.x import _y`, `import dialer.x as m` (or `from dialer import x`, or a class
    imported from dialer) then `m._y` or `setattr(m, "_y", ...)`, and `patch("dialer.x._y")`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, imported = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dialer":
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dialer":
                    imported.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute) and not _is_private(base.attr):
                base = base.value
            if isinstance(base, ast.Name) and base.id in imported:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and _attr_call(node) and len(node.args) >= 2:
            owner, name = node.args[0], node.args[1]
            if (
                isinstance(owner, ast.Name)
                and owner.id in imported
                and isinstance(name, ast.Constant)
                and _is_private(str(name.value))
            ):
                found.append(f"{node.lineno}: {ast.unparse(node.func)}({owner.id}, {name.value!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _DIALER_PATH.fullmatch(node.value)
            if match and _is_private(match[1]):
                found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_no_test_reaches_a_private_name_of_the_package() -> None:
    reaching = {
        path.name: names
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (names := _private_names(path))
    }
    unexpected = {name: found for name, found in reaching.items() if name not in PRIVATE_NAMES_LEFT}
    assert unexpected == {}, "use a public seam, or make the name public if it is one"
    stale = sorted(set(PRIVATE_NAMES_LEFT) - set(reaching))
    assert stale == [], "these files reach no private name now: take them off the list"


def test_the_private_name_check_sees_each_way_in(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import dialer.sheets.reader as reader\n"
        "from dialer.sheets import contacts\n"
        "from dialer.reports.writer import ReportWriter, _csv_text\n"
        "from unittest.mock import patch\n"
        "reader._SNIFF_BYTES, contacts._render, ReportWriter._fields, reader.Sheet._parse\n"
        "patch('dialer.sheets.contacts._trial_render')\n"
        "own._loop, reader.open_sheet, ReportWriter.__init__\n"
        "monkeypatch.setattr(reader, '_SNIFF_BYTES', 12)\n",
        encoding="utf-8",
    )
    assert sorted(line.split(": ", 1)[1] for line in _private_names(probe)) == sorted(
        [
            "from dialer.reports.writer import _csv_text",
            "reader._SNIFF_BYTES",
            "contacts._render",
            "ReportWriter._fields",
            "reader.Sheet._parse",
            "'dialer.sheets.contacts._trial_render'",
            "monkeypatch.setattr(reader, '_SNIFF_BYTES')",
        ]
    )


def test_every_example_in_a_docstring_runs() -> None:
    """A `>>>` example is a promise that it runs: each module that has one passes doctest
    (examples that are only a sketch are written without `>>>`)."""
    import doctest
    import importlib

    root = Path(__file__).resolve().parent.parent
    failed, ran = {}, 0
    for path in sorted((root / "dialer").rglob("*.py")):
        if ">>>" not in path.read_text("utf-8") or path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        result = doctest.testmod(importlib.import_module(name), report=False)
        ran += result.attempted
        if result.failed or not result.attempted:
            failed[name] = (result.failed, result.attempted)
    assert ran, "no example ran: the check reads no module"
    assert not failed, f"modules whose >>> examples do not run (failed, tried): {failed}"
