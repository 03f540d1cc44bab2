"""The CLI documents itself: every command has help with an example, every option has help."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from dialer.campaign.model import DEFAULT_API_KEY_ENV
from dialer.cli import build_parser, main

COMMANDS = ("validate", "run", "status", "sync", "ledger", "serve", "demo", "fake-tabbly")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_listed():
    assert set(_subparsers()) == set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example_and_every_option_has_help(name):
    sub = _subparsers()[name]
    assert "example:" in (sub.description or "")
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_python_dash_m_dialer_help_works():
    out = subprocess.run(
        [sys.executable, "-m", "dialer", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--retry-unknown" in out


KEY = "sk-live-7f3a9c-NEVER-SHOWN"


@pytest.mark.parametrize("command", [(), *((name,) for name in COMMANDS)])
def test_no_help_shows_the_api_key_from_the_environment(command, monkeypatch, capsys):
    # Set before the parser is built: a default read from the environment would be in the help.
    monkeypatch.setenv(DEFAULT_API_KEY_ENV, KEY)

    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])

    shown = capsys.readouterr()
    assert stopped.value.code == 0
    assert shown.out.startswith("usage: ")
    assert KEY not in shown.out + shown.err
    assert "7f3a9c" not in shown.out + shown.err  # nor a part of it


def test_unknown_option_is_a_one_line_usage_error(cli):
    result = cli(["run", "campaigns/x.toml", "--bogus"])
    assert result.code == 2 and result.err.count("\n") == 1 and "--bogus" in result.err
