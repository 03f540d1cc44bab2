"""The CLI documents itself: every command has help with an example, every option has help."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from typing import Any

import pytest
from conftest import fresh_python

from dialer import cli
from dialer.campaign.model import DEFAULT_API_KEY_ENV
from dialer.cli import main

COMMANDS = (
    "validate",
    "run",
    "status",
    "sync",
    "ledger",
    "optout",
    "users",
    "audit",
    "serve",
    "demo",
    "fake-tabbly",
)


def _parsers_of(name: str) -> list[argparse.ArgumentParser]:
    """Every parser the command's own `add_parser` makes (a subcommand's too), each with the
    help of every argument added to it, as `(names, help)` in `parser.helps`."""
    made: list[argparse.ArgumentParser] = []

    class Recording(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.helps: list[tuple[tuple[str, ...], str | None]] = []
            super().__init__(*args, **kwargs)
            made.append(self)

        def add_argument(self, *names: Any, **kwargs: Any) -> Any:
            self.helps.append((names, kwargs.get("help")))
            return super().add_argument(*names, **kwargs)

    module = importlib.import_module(f"dialer.commands.{cli.COMMANDS[name]}")
    module.add_parser(Recording(prog="dialer").add_subparsers())
    return made[1:]


def test_every_command_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]

    assert tuple(cli.COMMANDS) == COMMANDS
    assert [line.split()[0] for line in listed.splitlines() if line[4] != " "] == list(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example_and_every_option_has_help(name):
    parsers = _parsers_of(name)
    assert parsers, f"{name} made no parser"
    for parser in parsers:
        assert "example:" in (parser.description or ""), parser.prog
        for names, help_text in parser.helps:
            assert help_text, f"{parser.prog} {names} has no help"


def test_a_command_loads_no_other_command_module(tmp_path):
    """`dialer sync` and the fake need none of the run's parts: only the module of the command
    given is loaded; `dialer --help` loads them all."""
    probe = (
        "import sys\n"
        "from dialer.cli import main\n"
        "for argv in (['sync', '--help'], ['fake-tabbly', '--help'], ['--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('dialer.commands.'))\n"
        "    print(' '.join(m.rsplit('.', 1)[1] for m in loaded), file=sys.stderr)\n"
    )
    done = fresh_python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    sync, fake, everything = done.stderr.splitlines()
    assert sync == "arguments sync"
    assert fake == "arguments fake_tabbly sync"
    assert set(everything.split()) >= {"run", "validate", "status", "ledger", "serve", "demo"}


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
