"""`[contacts] source`: a plain path, or the newest file of a glob, relative to the campaign."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dialer.core.statuses import SheetError
from dialer.sheets.sources import resolve_source

T0 = 1_700_000_000  # fixed epoch seconds; files get mtimes relative to it, no sleeping


def touch(path: Path, mtime: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("phone\n+919876543210\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def test_plain_path_is_returned_relative_to_base(tmp_path: Path) -> None:
    sheet = touch(tmp_path / "contacts.csv", T0)
    assert resolve_source("contacts.csv", tmp_path) == sheet


def test_plain_path_in_a_subfolder_of_base(tmp_path: Path) -> None:
    sheet = touch(tmp_path / "data" / "contacts.xlsx", T0)
    assert resolve_source("data/contacts.xlsx", tmp_path) == sheet


def test_missing_plain_path_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"contacts\.csv: contact sheet not found"):
        resolve_source("contacts.csv", tmp_path)


def test_plain_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "drops").mkdir()
    with pytest.raises(SheetError, match="is a folder"):
        resolve_source("drops", tmp_path)


def test_glob_picks_the_newest_file_by_modification_time(tmp_path: Path) -> None:
    # Names sort opposite to age, so a name-based choice would fail this test.
    touch(tmp_path / "drops" / "contacts-c.csv", T0)
    newest = touch(tmp_path / "drops" / "contacts-a.csv", T0 + 120)
    touch(tmp_path / "drops" / "contacts-b.csv", T0 + 60)
    assert resolve_source("drops/contacts-*.csv", tmp_path) == newest


def test_glob_mtime_tie_is_broken_by_name_last_wins(tmp_path: Path) -> None:
    touch(tmp_path / "contacts-1.csv", T0)
    last = touch(tmp_path / "contacts-2.csv", T0)
    assert resolve_source("contacts-?.csv", tmp_path) == last


def test_glob_ignores_directories_even_when_newer(tmp_path: Path) -> None:
    sheet = touch(tmp_path / "contacts-old.csv", T0)
    folder = tmp_path / "contacts-new.csv"
    folder.mkdir()
    os.utime(folder, (T0 + 3600, T0 + 3600))
    assert resolve_source("contacts-*.csv", tmp_path) == sheet


def test_glob_with_no_match_names_pattern_and_base(tmp_path: Path) -> None:
    touch(tmp_path / "other.csv", T0)
    with pytest.raises(SheetError) as caught:
        resolve_source("drops/contacts-*.csv", tmp_path)
    assert str(caught.value) == f"no file matches drops/contacts-*.csv in {tmp_path}"


def test_glob_matching_only_directories_is_no_match(tmp_path: Path) -> None:
    (tmp_path / "contacts-dir.csv").mkdir()
    with pytest.raises(SheetError, match="no file matches"):
        resolve_source("contacts-*.csv", tmp_path)


def test_glob_is_relative_to_base_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "campaigns"
    sheet = touch(base / "contacts-1.csv", T0)
    elsewhere = tmp_path / "cron-cwd"
    touch(elsewhere / "contacts-2.csv", T0 + 60)  # newer, but not under base
    monkeypatch.chdir(elsewhere)
    assert resolve_source("contacts-*.csv", base) == sheet


def test_absolute_glob_ignores_base(tmp_path: Path) -> None:
    newest = touch(tmp_path / "drops" / "contacts-2.csv", T0 + 60)
    touch(tmp_path / "drops" / "contacts-1.csv", T0)
    base = tmp_path / "campaigns"
    base.mkdir()
    assert resolve_source(str(tmp_path / "drops" / "contacts-*.csv"), base) == newest


def test_absolute_plain_path_ignores_base(tmp_path: Path) -> None:
    sheet = touch(tmp_path / "contacts.csv", T0)
    assert resolve_source(str(sheet), tmp_path / "campaigns") == sheet


def test_glob_characters_in_base_are_taken_literally(tmp_path: Path) -> None:
    base = tmp_path / "team[1]"
    sheet = touch(base / "contacts-1.csv", T0)
    assert resolve_source("contacts-*.csv", base) == sheet
