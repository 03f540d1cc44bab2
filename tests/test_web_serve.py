"""`dialer serve` start-up (issue 9 review): weak tokens refused in one line, and `--port 0`
announces the port it really listens on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest
from test_web_hardening import BOUND, SERVE, TOKEN, _project

from dialer.core.statuses import ExitCode


@pytest.mark.parametrize(
    "token", [" " * 24, "a" * 30, "abcabcabcabcabcabcabcabcabc", "correct horse battery staple x"]
)
def test_a_weak_token_is_refused_in_one_line(tmp_path, token):
    root = _project(tmp_path)
    try:
        done = subprocess.run(
            [*SERVE, "--root", str(root), "--port", "0"],
            env={**os.environ, "DIALER_UI_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"dialer serve started with the token {token!r}")
    assert done.returncode == ExitCode.INPUT_ERROR, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("dialer: error: set DIALER_UI_TOKEN to a secret of at least 24")
    assert "no spaces" in line and "at least 10 of them different" in line
    assert done.stdout == ""


def test_port_0_announces_the_port_it_listens_on(tmp_path):
    root = _project(tmp_path)
    proc = subprocess.Popen(
        [*SERVE, "--root", str(root), "--port", "0"],
        env={**os.environ, "DIALER_UI_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # the first line, printed once it is listening
        found = re.match(r"dialer serve: http://127\.0\.0\.1:(\d+)/ ", line)
        assert found, line
        port = int(found.group(1))
        assert port != 0
        deadline = time.monotonic() + BOUND
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"nothing answers on port {port}"
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
