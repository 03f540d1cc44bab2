"""Property-based fuzzing of what a user hands dialer (sheets, campaign files, templates) and
of what an upstream answers: trigger-call answers (see `test_fuzz_trigger_call_answers`)
and call-log pages (`dialer sync` must end 0 or 2, see the end).

For every generated project, `dialer validate`:
  * ends with exit 0, 1 or 2, within a time bound and a memory bound;
  * on exit 2 prints exactly one line on stderr; never a traceback or an "internal error";
  * never shows a whole phone number from the sheet or the templates on the console;
  * writes nothing outside reports/ and state/.

For every generated trigger-call answer (status, headers, body, encoding, timing, served by a
small aiohttp app on 127.0.0.1), `dialer run`:
  * ends with an exit code of SPEC 5 other than 70, within the time and memory bounds;
  * prints no traceback, follows no redirect, and shows the key (or 8 of its characters in a
    row) in no report, ledger or console line;
  * never leaves `unknown` a row whose answer's status says no call was placed.

Each case runs in a child forked from one long-lived runner process (dialer imported once,
~50 ms a case) with RLIMIT_AS and a timeout, so a hang or a memory bomb fails the test
instead of the machine. Its stdout and stderr are file descriptors 1 and 2, so what native
code prints (a Rust panic) is seen too. Deterministic (`derandomize`): CI cannot flake on it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOOR_LIFT_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.core.statuses import ExitCode

_MEMORY_LIMIT = 1 << 30  # well under what the machine has; SPEC 7 asks "well under 1 GB"
_CASE_TIMEOUT = 20.0
FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# The runner: reads one JSON case per line, forks a child per case, answers one JSON line.
_RUNNER = r"""
import json, os, resource, select, signal, sys
import dialer.cli, dialer.commands.run, dialer.sheets.pipeline, dialer.sheets.contacts
import dialer.sheets.reader, dialer.reports.writer
import dialer.engine.dispatch, dialer.tabbly.client
limit, timeout = int(sys.argv[1]), float(sys.argv[2])
for line in sys.stdin:
    case = json.loads(line)
    if case.get("warm"):  # in this process: load what every case needs once (~0.7 s)
        import contextlib
        os.chdir(case["cwd"])
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            with contextlib.redirect_stderr(null):
                dialer.cli.main(case["argv"])
        print("{}", flush=True)
        continue
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            os.chdir(case["cwd"])
            os.environ.update(case.get("env") or {})
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for fd, path in ((1, case["out"]), (2, case["err"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
            code = dialer.cli.main(case["argv"])
            sys.stdout.flush(); sys.stderr.flush()
            answer = {"code": code}
        except BaseException as exc:
            answer = {"crash": f"{type(exc).__name__}: {exc}"}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], timeout)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    data = b""
    while ready:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not ready:
        answer = {"timeout": timeout}
    elif data:
        answer = json.loads(data)
    else:
        answer = {"died": status}
    print(json.dumps(answer), flush=True)
"""


class Runner:
    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DIALER_DEBUG"}
        env["PYTHONIOENCODING"] = "utf-8"
        # Made once for the module, before any test's own fixtures: the legal floor is
        # lifted here as in every other child of the suite (the cases call at any hour).
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([FLOOR_LIFT_DIR, *paths])
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(_MEMORY_LIMIT), str(_CASE_TIMEOUT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def warm(self) -> None:
        """Validate a good CSV and XLSX project in the runner itself, so that every forked case
        starts with phone metadata, templates and the sheet readers loaded."""
        for case in (Case(sheet_bytes=_GOOD_CSV), _good_xlsx_case()):
            root = _write_project(case)
            try:
                self.run(root, ["validate", str(root / "campaigns" / "fuzz.toml")], warm=True)
            finally:
                shutil.rmtree(root, ignore_errors=True)

    def run(
        self,
        cwd: Path,
        argv: list[str],
        *,
        warm: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out, err = cwd / ".fuzz-out", cwd / ".fuzz-err"
        case = {"cwd": str(cwd), "argv": argv, "out": str(out), "err": str(err), "warm": warm}
        case["env"] = env or {}
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        text = [p.read_bytes().decode("utf-8", "replace") if p.exists() else "" for p in (out, err)]
        for p in (out, err):
            p.unlink(missing_ok=True)
        return answer, text[0], text[1]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    r = Runner()
    r.warm()
    yield r
    r.close()


# -- a project on disk ------------------------------------------------------------------------

HEADER = ["customer_id", "first_name", "phone", "order_id"]
GOOD_CAMPAIGN: dict[str, Any] = {
    "name": "fuzz",
    "organization_id": 244,
    "agent_id": 33,
    "call_from": "+14156801215",
    "first_line": "Hello {{ first_name }}, about order {{ order_id }}.",
    "instruction": "Order {{ order_id }}.",
    "contacts": {
        "source": "../data/contacts.csv",
        "phone_column": "phone",
        "id_column": "customer_id",
        "default_region": "IN",
    },
}


@dataclass
class Case:
    """What a project holds, and the phone numbers (national digits) it must never show."""

    campaign: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(GOOD_CAMPAIGN)))
    campaign_text: str | None = None  # raw TOML instead of `campaign`
    sheet_name: str = "contacts.csv"
    sheet_bytes: bytes = b""
    numbers: list[str] = field(default_factory=list)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _campaign_text(campaign: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {_toml(v)}" for k, v in campaign.items() if not isinstance(v, dict)]
    tables = [
        f"[{json.dumps(k)}]\n"
        + "".join(f"{json.dumps(kk)} = {_toml(vv)}\n" for kk, vv in v.items())
        for k, v in campaign.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n".join(tables)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder outside reports/ and state/ (and the runner's capture files)."""
    seen = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("reports", "state") or rel.name.startswith(".fuzz-"):
            continue
        info = path.lstat()
        seen[str(rel)] = (info.st_size, info.st_mtime_ns)
    return seen


def _write_project(case: Case) -> Path:
    root = Path(tempfile.mkdtemp(prefix="dialer-fuzz-"))
    (root / "campaigns").mkdir()
    (root / "data").mkdir()
    text = case.campaign_text if case.campaign_text is not None else _campaign_text(case.campaign)
    (root / "campaigns" / "fuzz.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    (root / "data" / case.sheet_name).write_bytes(case.sheet_bytes)
    return root


_GOOD_CSV = b"customer_id,first_name,phone,order_id\nC1,Asha,+917359000001,O1\n"


def _good_xlsx_case() -> Case:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(HEADER)
    book.active.append(["C1", "Asha", 917359000001, "O1"])
    buffer = io.BytesIO()
    book.save(buffer)
    case = Case(sheet_name="contacts.xlsx", sheet_bytes=buffer.getvalue())
    case.campaign["contacts"]["source"] = "../data/contacts.xlsx"
    return case


def check_validate(runner: Runner, case: Case) -> None:
    root = _write_project(case)
    campaign = root / "campaigns" / "fuzz.toml"
    try:
        before = _snapshot(root)

        answer, out, err = runner.run(root, ["validate", str(campaign)])

        console = out + err
        assert "timeout" not in answer, f"still running after {_CASE_TIMEOUT} s"
        assert "died" not in answer, f"killed (status {answer.get('died')}): memory bound?"
        assert "crash" not in answer, answer.get("crash")
        code = answer["code"]
        assert code in (ExitCode.OK, ExitCode.ROW_PROBLEMS, ExitCode.INPUT_ERROR), (code, err)
        assert "Traceback" not in console and "internal error" not in console, err
        assert "panicked" not in console, err
        if code == ExitCode.INPUT_ERROR:
            assert err.count("\n") == 1 and err.startswith("dialer: error: "), err
        for line in console.splitlines():
            digits = re.sub(r"\D", "", line)
            for number in case.numbers:
                assert number not in digits, f"whole phone number on the console: {line!r}"
        assert _snapshot(root) == before, "something was written outside reports/ and state/"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- strategies -------------------------------------------------------------------------------

_national = st.integers(6_000_000_000, 9_999_999_999).map(str)


@st.composite
def phone_cells(draw: st.DrawFn) -> tuple[str, str]:
    """(cell text, national digits): the ways spreadsheets and people write a number."""
    n = draw(_national)
    style = draw(st.sampled_from(range(9)))
    cell = [
        f"+91{n}",
        f"+91 {n[:5]} {n[5:]}",
        f"0{n}",
        f"91{n}",
        f"(+91) {n[:3]}-{n[3:6]}-{n[6:]}",
        f"{n[:5]}.{n[5:]}",
        f"tel:+91{n}",
        f"'+91{n}",
        f"0091 {n}",
    ][style]
    return cell, n


_weird_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",;\t\"'\n\r=+-@{}%#\\ \u00a0\u200b\u202eé€")),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=24,
)


@st.composite
def sheet_rows(draw: st.DrawFn) -> tuple[list[str], list[list[str]], list[str]]:
    header = list(HEADER)
    if draw(st.booleans()):
        header.append(draw(_weird_text))
    if draw(st.integers(0, 9)) == 0:
        header[draw(st.integers(0, len(header) - 1))] = draw(_weird_text)
    rows, numbers = [], []
    for i in range(draw(st.integers(0, 6))):
        cells = [draw(_weird_text) for _ in header]
        if draw(st.integers(0, 4)):
            cell, n = draw(phone_cells())
            numbers.append(n)
        else:
            cell = draw(_weird_text)
        if "phone" in header:
            cells[header.index("phone")] = cell
        if "customer_id" in header and draw(st.booleans()):
            cells[header.index("customer_id")] = f"C{i}"
        rows.append(cells)
    return header, rows, numbers


@st.composite
def csv_cases(draw: st.DrawFn) -> Case:
    header, rows, numbers = draw(sheet_rows())
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    data = buffer.getvalue().encode(encoding, errors="replace")
    if draw(st.integers(0, 5)) == 0:
        data += draw(st.binary(max_size=64))
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=200))
    return Case(sheet_bytes=data, numbers=numbers)


@st.composite
def xlsx_cases(draw: st.DrawFn) -> Case:
    from openpyxl import Workbook

    header, rows, numbers = draw(sheet_rows())
    book = Workbook()
    sheet = book.active
    sheet.append([_xlsx_safe(c) for c in header])
    for cells in rows:
        if "phone" in header and draw(st.booleans()):
            # A number typed into Excel: a numeric cell, as float or int.
            n = draw(_national)
            numbers.append(n)
            cells[header.index("phone")] = draw(st.sampled_from([int(f"91{n}"), float(f"91{n}")]))
        sheet.append([_xlsx_safe(c) for c in cells])
    buffer = io.BytesIO()
    book.save(buffer)
    case = Case(sheet_name="contacts.xlsx", sheet_bytes=buffer.getvalue(), numbers=numbers)
    case.campaign["contacts"]["source"] = "../data/contacts.xlsx"
    return case


def _xlsx_safe(value: Any) -> Any:
    """openpyxl refuses control characters in cells: what Excel could not have saved."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


_toml_values = st.recursive(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, -1, 1, 2**53, 2**63, 10**23]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e-300, 1e300, 0.001, 0.01, 10_000.0, 1e6]),
        st.booleans(),
        _weird_text,
        st.sampled_from(["mon", "monkey", "Sunday", "09:00-20:00", "25:00-26:00", "http://[::1"]),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)
_CAMPAIGN_KEYS = [
    ("name",),
    ("organization_id",),
    ("agent_id",),
    ("call_from",),
    ("called_by_account",),
    ("endpoint",),
    ("api_key_env",),
    ("api_key",),
    ("bogus",),
    ("contacts", "phone_column"),
    ("contacts", "id_column"),
    ("contacts", "default_region"),
    ("contacts", "sheet"),
    ("contacts", "suppress"),
    ("dispatch", "rate_per_second"),
    ("dispatch", "concurrency"),
    ("dispatch", "max_attempts"),
    ("dispatch", "timeout_seconds"),
    ("window", "hours"),
    ("window", "days"),
    ("window", "timezone_column"),
    ("window", "bogus"),
]


_days = st.lists(st.sampled_from(["mon", "Tue", "wednesday", "SUN", "fri"]), min_size=1, max_size=7)
_PLAUSIBLE: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("name",): st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True),
    ("organization_id",): st.integers(1, 2**60),
    ("agent_id",): st.integers(1, 2**60),
    ("call_from",): st.sampled_from(["+14156801215", "+917359043943", "+1415"]),
    ("called_by_account",): _weird_text,
    ("endpoint",): st.sampled_from(
        ["http://127.0.0.1:9/x", "https://[::1]:8/t", "http://h:65536/", "http://a b/"]
    ),
    ("contacts", "id_column"): st.sampled_from(["customer_id", "order_id", "first_name"]),
    ("contacts", "default_region"): st.sampled_from(["IN", "us", "GB", "ZZ"]),
    ("dispatch", "rate_per_second"): st.floats(0.001, 20_000),
    ("dispatch", "concurrency"): st.integers(0, 2000),
    ("dispatch", "max_attempts"): st.integers(0, 30),
    ("dispatch", "timeout_seconds"): st.floats(0.01, 1000),
    ("window", "hours"): st.from_regex(
        r"[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]", fullmatch=True
    ),
    ("window", "days"): _days,
    ("window", "timezone_column"): st.sampled_from(["order_id", "tz"]),
}


@st.composite
def campaign_cases(draw: st.DrawFn) -> Case:
    header, rows, numbers = HEADER, [], []
    for i in range(3):
        cell, n = draw(phone_cells())
        rows.append([f"C{i}", f"Name{i}", cell, f"O{i}"])
        numbers.append(n)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    case = Case(sheet_bytes=buffer.getvalue().encode(), numbers=numbers)
    for path in draw(st.lists(st.sampled_from(_CAMPAIGN_KEYS), max_size=2, unique=True)):
        plausible = _PLAUSIBLE.get(path)
        # Mostly a value the key could hold (the checks past the type), sometimes anything.
        odd = plausible is None or draw(st.integers(0, 3)) == 0
        value = draw(_toml_values if odd else plausible)
        table = case.campaign
        for key in path[:-1]:
            table = table.setdefault(key, {})
        table[path[-1]] = value
    text = _campaign_text(case.campaign)
    if draw(st.integers(0, 9)) == 0:
        text += draw(_weird_text)  # whatever follows: a TOML error, or another key
    case.campaign_text = text
    return case


_atoms = st.one_of(
    st.sampled_from(["first_name", "order_id", "phone", "customer_id", "nope", "loop", "x"]),
    st.integers(-(10**6), 10**12).map(str),
    st.sampled_from(["10**9", "9 ** (9 ** 10)", "range(100000)", "range(5)", "lipsum(3)"]),
    st.text(alphabet="ab %d{}s0", max_size=6).map(lambda t: repr(t)),
    st.sampled_from(["[1, 2]", "{'a': 1}", "namespace(a=1)", "none", "true", "'{:>99999999}'"]),
)
_filters = st.sampled_from(
    [
        "|title",
        "|upper",
        "|default('x')",
        "|format(1)",
        "|center(99999999)",
        "|replace('a','bb')",
        "|join(',')",
        "|int",
        "|float",
        "|length",
        "|list",
        "|batch(99999999)",
        "|slice(3)",
        "|sum",
        "|wordwrap(2)",
        "|indent(9)",
        "|truncate(5)",
        "|e",
        "|tojson",
        "|first",
        "|reverse",
        "|sort",
        "|unique",
        "|string",
        "|trim",
        "|round(2)",
        "|abs",
        ".upper()",
        ".split()",
        ".center(99999999)",
        ".zfill(5)",
        ".format(1)",
        ".replace('a','b')",
        ".to_bytes(9,'big')",
        ".translate({})",
    ]
)
_ops = st.sampled_from(["~", "+", "*", "**", "%", "//", "/", "-", "==", "and", "in"])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _atoms,
        lambda inner: st.one_of(
            st.tuples(inner, _ops, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, _filters).map(lambda t: f"({t[0]}){t[1]}"),
        ),
        max_leaves=5,
    )


def _blocks() -> st.SearchStrategy[str]:
    expr = _expressions()
    return st.recursive(
        st.one_of(
            expr.map(lambda e: "{{ " + e + " }}"),
            st.text(alphabet="Hi, {}%#()'\"|.~ +917359 -", max_size=12),
            _national.map(lambda n: f" call +91 {n[:5]} {n[5:]} "),
        ),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(expr, inner).map(lambda t: f"{{% for x in {t[0]} %}}{t[1]}{{% endfor %}}"),
            st.tuples(expr, inner, inner).map(
                lambda t: f"{{% if {t[0]} %}}{t[1]}{{% else %}}{t[2]}{{% endif %}}"
            ),
            st.tuples(expr, inner).map(lambda t: f"{{% set v = {t[0]} %}}{t[1]}{{{{ v }}}}"),
            inner.map(
                lambda b: f"{{% macro m(a) %}}{b}{{{{ m(a) }}}}{{% endmacro %}}{{{{ m(1) }}}}"
            ),
        ),
        max_leaves=6,
    )


@st.composite
def template_cases(draw: st.DrawFn) -> Case:
    rows, numbers = [], []
    for i in range(3):
        cell, n = draw(phone_cells())
        rows.append(
            [f"C{i}", draw(st.sampled_from(["Asha", "", "a" * 200, "{{ x }}"])), cell, "O1"]
        )
        numbers.append(n)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEADER, *rows])
    case = Case(sheet_bytes=buffer.getvalue().encode(), numbers=numbers)
    for key in ("first_line", "instruction"):
        if draw(st.booleans()):
            source = draw(_blocks())
            case.campaign[key] = source
            numbers.extend(a + b for a, b in re.findall(r"call \+91 (\d{5}) (\d{5})", source))
    return case


# -- the properties ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(case=csv_cases())
def test_fuzz_csv_sheets(runner: Runner, case: Case):
    check_validate(runner, case)


@settings(FUZZ, max_examples=12)
@given(case=xlsx_cases())
def test_fuzz_xlsx_sheets(runner: Runner, case: Case):
    check_validate(runner, case)


@settings(FUZZ, max_examples=60)
@given(case=campaign_cases())
def test_fuzz_campaign_files(runner: Runner, case: Case):
    check_validate(runner, case)


@settings(FUZZ, max_examples=100)
@given(case=template_cases())
def test_fuzz_templates(runner: Runner, case: Case):
    check_validate(runner, case)


# -- the upstream side: call-log pages --------------------------------------------------------
#
# `dialer sync --since` of a campaign that called three people, against pages drawn from a
# grammar of hostile JSON: wrong types, numbers Python cannot hold, unicode digits, missing
# keys, nested junk, non-JSON bytes. Whatever the page, the sync ends 0 or 2 (one line), never
# 70 nor a traceback, within the runner's time and memory bounds.


class Raw(str):
    """JSON text written as is: numbers json.dumps cannot write (5,000 digits, 1e400)."""


def _dump(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dump(str(k))}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_dump, value)) + "]"
    return json.dumps(value)  # NaN and Infinity as Python's json reads them


_LOG_KEYS = [
    "id", "call_id", "called_to", "called_time", "timestamp", "call_status", "call_duration",
    "call_summary", "call_transcript", "transcript", "call_recording", "recording_url",
    "total_call_cost", "use_agent_id", "agent_id", "participant_identity", "room_name",
    "custom_identifiers", "call_outcome", "call_sentiment", "call_json_output",
]  # fmt: skip
_LOG_NUMBERS = ["+917359000000", "+917359000001", "+917359000002", "07359000001", "917359000002"]
_ODD_NUMBERS = ["9" * 5000, "1e400", "-1e400", "1e-400", "-0", "1E+308", "9" * 25, "NaN"]
_ODD_TEXTS = [
    "1:²", "²", "١٢", "1:2:3:4", "9" * 20, "1e300", "-5", "$1,000", " 42 ", "", "nan", "inf",
    "\ud800", "a\x00b", "9" * 5000, "1:" + "9" * 5000, "2026-13-45", "9999-12-31T23:59:59+14:00",
    "\x1b[31mred", "Call Answered", "No Call Transcript Available", "33", "0:00:59",
]  # fmt: skip


@st.composite
def _log_times(draw: st.DrawFn) -> Any:
    from datetime import UTC, datetime, timedelta

    at = datetime.now(UTC) - timedelta(seconds=draw(st.integers(-86_400, 86_400)))
    return draw(
        st.sampled_from(
            [
                at.strftime("%Y-%m-%d %H:%M:%S"),
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                at.isoformat(),
                int(at.timestamp()),
                int(at.timestamp() * 1000),
                at.timestamp(),
            ]
        )
    )


_log_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(_ODD_NUMBERS).map(Raw),
    st.sampled_from(_ODD_TEXTS),
    st.sampled_from(_LOG_NUMBERS),
    _log_times(),
)
_log_values = st.recursive(
    _log_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
_log_rows = st.lists(
    st.dictionaries(st.sampled_from(_LOG_KEYS) | st.text(max_size=6), _log_values, max_size=14)
    | _log_values,
    max_size=10,
)
_log_totals = st.one_of(_log_values, st.sampled_from(["²", "9" * 5000, Raw("9" * 5000)]))


@st.composite
def log_pages(draw: st.DrawFn) -> tuple[int, bytes]:
    """One hostile answer to the first page: an HTTP status and a body."""
    rows = draw(_log_rows)
    kind = draw(st.sampled_from(["v2", "docs", "list", "nested", "junk", "bytes"]))
    if kind == "bytes":
        return 200, draw(st.binary(max_size=200))
    page: Any = {
        "v2": lambda: {"status": "success", "data": rows, "total_records": draw(_log_totals)},
        "docs": lambda: {"success": True, "calls": rows, "total": draw(_log_totals)},
        "list": lambda: rows,
        "nested": lambda: {"status": "success", "data": {"calls": rows}},
        "junk": lambda: draw(_log_values),
    }[kind]()
    body = _dump(page)
    if draw(st.integers(0, 9)) == 0:  # cut short
        body = body[: draw(st.integers(0, len(body)))]
    status = draw(st.sampled_from([200] * 8 + [400, 401, 404, 422]))
    return status, body.encode("utf-8", "surrogatepass")


class _LogPages:
    """The drawn answer for the first page (offset 0), an empty page after it: a lying total
    must not make each case read thousands of pages."""

    def __init__(self) -> None:
        import asyncio
        import threading

        from aiohttp import web

        self.answer: tuple[int, bytes] = (200, b"[]")
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

        async def serve(request: web.Request) -> web.Response:
            status, body = self.answer if request.query.get("offset") == "0" else (200, b"[]")
            return web.Response(status=status, body=body, content_type="application/json")

        async def start() -> str:
            app = web.Application()
            app.router.add_get("/logs", serve)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            return f"http://127.0.0.1:{self._runner.addresses[0][1]}/logs"

        self.url = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class _Synced:
    runner: Runner
    pages: _LogPages
    root: Path
    since: str
    cases: int = 0


@pytest.fixture(scope="module")
def synced_project() -> Iterator[_Synced]:
    """A campaign that called three people on the fake, and a runner whose sync reads the
    drawn pages (warmed by one sync, so each forked case starts with aiohttp loaded)."""
    from datetime import UTC, datetime, timedelta

    from dialer.cli import main
    from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread

    pages = _LogPages()
    case = Case(sheet_bytes=_GOOD_CSV + b"C2,Ravi,+917359000002,O2\nC3,Mira,+917359000000,O3\n")
    env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_LOGS_URL": pages.url}
    runner = None
    with FakeTabblyThread() as fake:
        case.campaign["endpoint"] = fake.url
        root = _write_project(case)
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                code = main(["run", str(root / "campaigns" / "fuzz.toml"), "--yes"])
        finally:
            os.environ.clear()
            os.environ.update(saved)
    try:
        assert code == ExitCode.OK
        since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        runner = Runner(env)
        synced = _Synced(runner, pages, root, since)
        _sync_case(synced, warm=True)
        yield synced
    finally:
        if runner is not None:
            runner.close()
        pages.close()
        shutil.rmtree(root, ignore_errors=True)


def _sync_case(synced: _Synced, *, warm: bool = False) -> tuple[dict[str, Any], str, str]:
    synced.cases += 1
    results = synced.root / "reports" / f"fuzz-{synced.cases}.results.csv"
    argv = ["sync", str(synced.root / "campaigns" / "fuzz.toml"), "--since", synced.since]
    return synced.runner.run(synced.root, [*argv, "--results", str(results)], warm=warm)


@settings(FUZZ, max_examples=50)
@given(answer=log_pages())
def test_fuzz_call_log_pages(synced_project: _Synced, answer: tuple[int, bytes]):
    synced_project.pages.answer = answer

    result, out, err = _sync_case(synced_project)

    console = out + err
    assert "timeout" not in result, f"still running after {_CASE_TIMEOUT} s"
    assert "died" not in result, f"killed (status {result.get('died')}): memory bound?"
    assert "crash" not in result, result.get("crash")
    code = result["code"]
    assert code in (ExitCode.OK, ExitCode.INPUT_ERROR), (code, err)
    assert "Traceback" not in console and "internal error" not in console, err
    if code == ExitCode.INPUT_ERROR:
        assert err.count("\n") == 1 and err.startswith("dialer: error: call logs: "), err
    else:
        assert re.search(r"^total cost: \d+\.\d\d$", out, re.MULTILINE), out


# -- a hostile trigger-call upstream ------------------------------------------------------------

_KEY = "sk-fuzz-Q7f9ZpX2kLm4wR8tYb3N"
_SINK = "<sink>"  # where a redirect points: a second server, which must receive nothing
# Answers whose status says no call was placed (a redirect is a refusal): never `unknown`.
_NO_CALL = frozenset(range(300, 500)) | {500, 502, 503}
_STATUSES = [200, 201, 204, 299, 301, 302, 303, 307, 308, 399, 400, 401, 402, 403, 404, 408]
_STATUSES += [418, 429, 499, 500, 502, 503, 504, 599]
_texts = st.sampled_from(
    [
        _KEY,
        f"invalid api_key {_KEY[:14]}..",
        f"key ..{_KEY[6:20]}",
        "\x01\x1b[31mred\x1b[0m\x7f",
        '=HYPERLINK("http://evil.example/","x")',
        "a" * 5000,
        "²\u202e\u200b",
        "\ud800",
        "",
        "\n",
    ]
)
_values = st.one_of(_texts, st.sampled_from([1, None, [], {"a": 1}, True, 1e308]))
_escaped = st.sampled_from(
    [
        "".join(f"\\u{ord(c):04x}" for c in _KEY),
        "".join(f"%{b:02X}" for b in _KEY.encode()),
        "".join(f"&#{ord(c)};" for c in _KEY),
    ]
)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # ASCII: a lone surrogate travels as its \u escape


_bodies = st.one_of(
    st.just(b""),
    st.builds(
        lambda r, p: _json({"success": True, "room_name": r, "participant_identity": p}),
        _values,
        _values,
    ),
    st.builds(lambda t: _json({"success": False, "error": t}), _values),
    st.builds(lambda k, t: _json({k: t}), st.sampled_from(["error", "message", "detail"]), _values),
    _escaped.map(lambda e: b'{"error": "' + e.encode() + b'", "room_name": "' + e.encode() + b'"}'),
    _texts.map(lambda t: f"<!DOCTYPE html><html><body>{t}</body></html>".encode(errors="replace")),
    st.binary(max_size=300),
    st.sampled_from([b"[" * 50_000, b'{"a":' * 50_000, b"x" * (1024 * 1024 + 1), b"NaN"]),
    st.sampled_from([b"[1, 2]", b'"success"', b"1e999", b'\xff\xfe{"success": true}']),
)


@dataclass(frozen=True)
class Answer:
    """One hostile answer: what every trigger request of a run gets."""

    status: int
    body: bytes
    encoding: str  # identity, gzip, deflate, or a header that lies about the body
    timing: str  # now, chunks, trickle, cut (closed mid-body), endless
    retry_after: str | None
    location: str | None


def _encoded(answer: Answer) -> tuple[bytes, dict[str, str]]:
    import gzip
    import zlib

    body, encoding = answer.body, answer.encoding
    if encoding == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if encoding == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    if encoding.startswith("lie:"):
        return body, {"Content-Encoding": encoding[4:]}
    return body, {}


async def _serve(answer: Answer, request: Any, sink: str, stopping: Any) -> Any:
    import asyncio

    from aiohttp import web

    data, headers = _encoded(answer)
    headers["Content-Type"] = "application/json"
    if answer.retry_after is not None:
        headers["Retry-After"] = answer.retry_after
    if answer.location is not None:
        headers["Location"] = answer.location.replace(_SINK, sink)
    if answer.timing == "now":
        return web.Response(status=answer.status, body=data, headers=headers)
    response = web.StreamResponse(status=answer.status, headers=headers)
    if answer.timing == "cut":
        response.content_length = len(data) + 100
    await response.prepare(request)
    try:
        if answer.timing == "chunks":
            for at in range(0, len(data), max(1, len(data) // 3)):
                await response.write(data[at : at + max(1, len(data) // 3)])
                await asyncio.sleep(0)
        elif answer.timing == "trickle":
            for at in range(len(data)):
                await response.write(data[at : at + 1])
                await asyncio.sleep(0.03)
        elif answer.timing == "cut":
            await response.write(data)
            if request.transport is not None:
                request.transport.close()
            return response
        elif answer.timing == "endless":
            while not stopping.is_set():
                await response.write(data or b"x" * 4096)
                await asyncio.sleep(0.002)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client went
    return response


answers = st.builds(
    Answer,
    status=st.sampled_from(_STATUSES),
    body=_bodies,
    encoding=st.sampled_from(["identity", "gzip", "deflate", "lie:gzip", "lie:br", "lie:x-y"]),
    timing=st.sampled_from(["now", "now", "chunks", "trickle", "cut", "endless"]),
    retry_after=st.sampled_from(
        [
            None,
            "0",
            "1",
            "-1",
            "0.2",
            "nan",
            "-inf",
            "soon",
            "",
            "Wed, 21 Oct 2015 07:28:00 -0000",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 +9999",
            "Wed, 21 Oct 99999999999 07:28:00 GMT",
        ]
    ),
    location=st.sampled_from([None, _SINK, "/elsewhere", "http://[::1", "ftp://x/"]),
)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Any, Any]]:
    from aiohttp import web

    from tests.hostile import Upstream

    async def placed(request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": True, "room_name": "room-of-the-sink"})

    with Upstream(placed) as sink, Upstream(placed) as upstream:
        yield upstream, sink


def _key_runs(text: str) -> list[str]:
    from dialer.tabbly.client import KEY_FRAGMENT_CHARS

    size = KEY_FRAGMENT_CHARS
    return [_KEY[i : i + size] for i in range(len(_KEY) - size + 1) if _KEY[i : i + size] in text]


@settings(FUZZ, max_examples=20)
@given(answer=answers)
def test_fuzz_trigger_call_answers(runner: Runner, upstreams: tuple[Any, Any], answer: Answer):
    upstream, sink = upstreams
    upstream.handler = lambda request: _serve(answer, request, sink.url, upstream.stopping)
    upstream.received.clear()
    sink.received.clear()
    sheet = "customer_id,first_name,phone,order_id\nC1,Asha,+917359000001,O1\n"
    sheet += "C2,Ravi,+917359000002,O2\n"
    case = Case(sheet_bytes=sheet.encode())
    case.campaign["endpoint"] = upstream.url
    case.campaign["dispatch"] = {
        "timeout_seconds": 0.3,
        "max_attempts": 2,
        "concurrency": 2,
        "rate_per_second": 100,
    }
    root = _write_project(case)
    try:
        result, out, err = runner.run(
            root,
            ["run", str(root / "campaigns" / "fuzz.toml"), "--yes"],
            env={"TABBLY_API_KEY": _KEY},
        )

        assert "timeout" not in result, f"still running after {_CASE_TIMEOUT} s"
        assert "died" not in result, f"killed (status {result.get('died')}): memory bound?"
        assert "crash" not in result, result.get("crash")
        code = result["code"]
        assert code in (0, 1, 3, 4), (code, err)
        console = out + err
        assert "Traceback" not in console and "internal error" not in console, err
        assert sink.received == [], "a redirect was followed"
        assert 1 <= len(upstream.received) <= 4
        shown = {"console": console}
        for path in root.rglob("*"):
            if path.is_file() and path.parts[-2] not in ("data", "campaigns"):
                shown[str(path)] = path.read_bytes().decode("utf-8", "replace")
        for where, text in shown.items():
            assert not _key_runs(text), f"the key ({_key_runs(text)}) is in {where}"
        [report] = [p for p in (root / "reports").rglob("*.csv")]
        with open(report, encoding="utf-8", newline="") as f:
            statuses = [row["status"] for row in csv.DictReader(f)]
        if answer.status in _NO_CALL:
            assert "unknown" not in statuses, (answer, statuses)
        if "triggered" in statuses:
            assert 200 <= answer.status < 300, (answer, statuses)
    finally:
        shutil.rmtree(root, ignore_errors=True)
