"""`dialer run` at its edges (issue 9 review): an XLSX report on a full disk, end of input at
the consent question. The real CLI in a subprocess, against the package's fake Tabbly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess
from test_run_faults import mount_tmpfs  # noqa: F401  (a fixture)

from dialer.fake_tabbly import FakeTabblyThread
from dialer.statuses import ExitCode


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
    (line,) = err.strip().splitlines()
    assert line.startswith("dialer: error: ") and "No space left on device" in line, err
    assert not report.exists()
    journal = reports / "r.xlsx.partial.csv"
    assert journal.stat().st_size > 0
    # The summary names the file that holds the rows, not an XLSX that was never made.
    assert f"report: {journal}\n" in out, out
