"""The register stops every campaign of the folder (SPEC 12): a number on it is `opted_out` in
the dry run, the consent count, the run and `dialer status`, `[limits]` or not; `--recall` and
`--retry-unknown` never override it; and it is judged again at the claim, so an opt-out
committed after a row was read but before its claim is never called."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project, contact_rows

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.commands.run import IOContext, Run, run
from dialer.core.clock import system_clock
from dialer.core.statuses import ExitCode, Status
from dialer.engine.gate import Gate
from dialer.engine.options import RunOptions
from dialer.fake_tabbly import FakeTabblyThread
from dialer.fake_tabbly.rules import LOGS_V2_PATH, TRIGGER_PATH
from dialer.ledger.optouts import Ask, Register, Source

PEOPLE = 6
NUMBERS = [row[2] for row in contact_rows(PEOPLE)]
SAID = {NUMBERS[0]: "phrase", NUMBERS[1]: "hindi", NUMBERS[2]: "decoy"}
HEARD = {NUMBERS[0], NUMBERS[1]}


def _campaign(project: Project, url: str, name: str) -> Path:
    """A campaign of the project's folder in its own file (same sheet, same state/), without
    [limits]."""
    text = project.write_campaign(url, name=name).read_text(encoding="utf-8")
    target = project.root / "campaigns" / f"{name}.toml"
    target.write_text(text, encoding="utf-8")
    return target


def _statuses(project: Project, name: str) -> dict[str, tuple[str, str]]:
    folder = project.root / "reports" / name
    newest = sorted(p for p in folder.glob("*.csv") if not p.name.endswith(".partial.csv"))[-1]
    return {r["called_to"]: (r["status"], r["reason"]) for r in project.report_rows(newest)}


def _called(fake) -> list[str]:
    return [body["called_to"] for body in fake.accepted()]


def _optout(cli, project: Project, *args: str):
    action, *rest = args
    return cli(["optout", action, "--root", str(project.root), *rest])


def test_people_heard_saying_no_are_opted_out_in_every_campaign_and_recall_calls_none(
    project: Project, cli
) -> None:
    with FakeTabblyThread(balance=1000, said=SAID, seed=3) as fake:
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.url.removesuffix(TRIGGER_PATH) + LOGS_V2_PATH}
        project.write_sheet(contact_rows(PEOPLE))
        spring = str(_campaign(project, fake.url, "spring"))
        assert cli(["run", spring, "--yes"], env).code == ExitCode.OK
        synced = cli(["sync", spring], env)
        assert synced.code == ExitCode.OK, synced.err
        summer = str(_campaign(project, fake.url, "summer"))

        dry = cli(["validate", summer], env)
        assert dry.code == ExitCode.OK, dry.err
        judged = _statuses(project, "summer")
        for number in HEARD:
            status, reason = judged[number]
            assert status == Status.OPTED_OUT
            assert reason.startswith("asked not to be called, call of 20")
            assert reason.endswith("(spring)")
        assert {n for n, (s, _) in judged.items() if s == Status.OPTED_OUT} == HEARD

        fake.received.clear()
        ran = cli(["run", summer, "--yes"], env)
        assert ran.code == ExitCode.OK, ran.err
        assert sorted(_called(fake)) == sorted(set(NUMBERS) - HEARD)
        assert {
            n for n, (s, _) in _statuses(project, "summer").items() if s == "opted_out"
        } == HEARD

        fake.received.clear()
        for options in (["--recall"], ["--recall", "--retry-unknown"]):
            again = cli(["run", spring, "--yes", *options], env)
            assert again.code == ExitCode.OK, again.err
        assert HEARD.isdisjoint(_called(fake))
        assert len(_called(fake)) == 2 * (PEOPLE - len(HEARD))

        status = cli(["status", spring], env)
        assert "opted out: 2 of these people" in status.out

        given_back = NUMBERS[0]
        assert _optout(cli, project, "remove", given_back).code == ExitCode.INPUT_ERROR
        removed = _optout(cli, project, "remove", given_back, "--reason", "wrote in to ask")
        assert removed.code == ExitCode.OK, removed.err
        fake.received.clear()
        assert cli(["run", spring, "--yes", "--recall"], env).code == ExitCode.OK
        assert given_back in _called(fake) and NUMBERS[1] not in _called(fake)


def test_a_run_of_only_opted_out_rows_exits_0_and_says_so(project: Project, cli, fake) -> None:
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    numbers = [row[2] for row in contact_rows(2)]
    assert _optout(cli, project, "add", *numbers, "--reason", "by email").code == 0

    dry = cli(["validate", str(project.campaign)])
    ran = cli(["run", str(project.campaign), "--yes"], KEY_ENV)

    assert dry.code == ExitCode.OK and ran.code == ExitCode.OK, ran.err
    assert fake.received == []
    rows = project.report_rows()
    assert [r["status"] for r in rows] == [Status.OPTED_OUT] * 2
    assert all(r["reason"].startswith("opted out 20") and "by email" in r["reason"] for r in rows)


def _opt_out_after_the_read(monkeypatch: pytest.MonkeyPatch, state: Path, number: str) -> None:
    """The row is judged (not on the register), then a sync of another campaign commits the
    opt-out: only the claim can still stop the call."""
    read_chunk = Gate.read_chunk

    def then_opted_out(self: Gate, chunk: Sequence) -> list:
        judged = read_chunk(self, chunk)
        with Register.open(state) as register:
            register.add(
                [Ask(number, Source.CALL, "sync@other", "said stop", "winter")], system_clock()
            )
        return judged

    monkeypatch.setattr(Gate, "read_chunk", then_opted_out)


@pytest.mark.parametrize("shared_file", [True, False], ids=["contacts-file", "no-file-yet"])
def test_an_opt_out_committed_after_the_read_is_refused_at_the_claim(
    project: Project, fake, monkeypatch: pytest.MonkeyPatch, shared_file: bool
) -> None:
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)  # no [limits]
    state = project.root / "state"
    if shared_file:  # someone else opted out earlier: the folder's shared file exists
        with Register.open(state) as register:
            register.add([Ask("+15125550100", Source.COMMAND, "a@h", "email")], system_clock())
    target = NUMBERS[1]
    _opt_out_after_the_read(monkeypatch, state, target)

    code = run(
        Run(load_campaign(project.campaign), yes=True, options=RunOptions()),
        IOContext(environ=KEY_ENV, out=io.StringIO(), err=io.StringIO()),
    )

    assert code == ExitCode.OK
    assert target not in _called(fake)
    assert sorted(_called(fake)) == sorted([NUMBERS[0], NUMBERS[2]])
    rows = {r["called_to"]: r for r in project.report_rows()}
    assert rows[target]["status"] == Status.OPTED_OUT
    assert rows[target]["reason"].startswith("asked not to be called, call of ")
    assert rows[target]["reason"].endswith("(winter)")
