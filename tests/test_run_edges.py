"""`dialer run` at its edges (issue 9 review): an XLSX report on a full disk, end of input at
the consent question. The real CLI in a subprocess, against the package's fake Tabbly."""

from __future__ import annotations

import os
import pty
import signal
import subprocess

from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess, error_lines
from test_run_faults import mount_tmpfs  # noqa: F401  (a fixture)

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread


def test_xlsx_report_on_a_full_disk_gives_one_line_and_names_the_file_with_the_rows(
    project: Project,
    mount_tmpfs,  # noqa: F811
):
    reports = mount_tmpfs(project.root / "reports", "60k")  # the journal fits, the XLSX not
    report = reports / "r.xlsx"
    with FakeTabblyThread(balance=1000, latency=0.01) as fake:
        project.write_sheet(contact_rows(300))
        project.write_campaign(fake.url, dispatch="rate_per_second = 500")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes", "--report", str(report)],
            env=KEY_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = proc.communicate(timeout=120)

    assert proc.returncode == ExitCode.INPUT_ERROR, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    (line,) = error_lines(err)
    assert line.startswith("dialer: error: ") and "No space left on device" in line, err
    assert not report.exists()
    journal = reports / "r.xlsx.partial.csv"
    assert journal.stat().st_size > 0
    # The summary names the file that holds the rows, not an XLSX that was never made.
    assert f"report: {journal}\n" in out, out


def test_end_of_input_at_the_consent_question_is_no(project: Project):
    """Ctrl-D (or a terminal closing its input) at "Start calling? [y/N]": the default, no."""

    with FakeTabblyThread() as fake:
        project.write_sheet(contact_rows(3))
        project.write_campaign(fake.url)
        leader, follower = pty.openpty()  # stdin a terminal: the question is asked
        try:
            proc = dialer_subprocess(
                ["run", str(project.campaign)],
                env=KEY_ENV,
                stdin=follower,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            os.close(follower)
            os.write(leader, b"\x04")  # Ctrl-D: end of input, read whenever it asks
            out, err = proc.communicate(timeout=60)
        finally:
            os.close(leader)
        received = list(fake.received)

    assert "Start calling? [y/N]" in out
    assert proc.returncode == ExitCode.OK, err
    assert err == "", err
    assert out.rstrip().endswith("Nothing sent."), out
    assert received == []
    assert not (project.root / "reports").exists()


def test_a_stop_signal_held_back_by_the_parent_during_start_up_ends_the_run_with_130(
    project: Project,
):
    """The interpreter's start-up runs before any of our code: a parent (the web page) that
    blocks the stop signals across exec gets one sent meanwhile delivered once the handlers
    are in place, as exit 130 and one line, instead of a silent kill or a run that ignores it."""
    with FakeTabblyThread() as fake:
        project.write_sheet(contact_rows(5))
        project.write_campaign(fake.url)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            proc = dialer_subprocess(
                ["run", str(project.campaign), "--yes"],
                env=KEY_ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        # Whenever it arrives (at start-up, or after the handlers), the run ends the same way.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        received = list(fake.received)

    assert proc.returncode == ExitCode.INTERRUPTED, (proc.returncode, err)
    assert err.strip() == "dialer: interrupted", err
    assert out == ""
    assert received == []
