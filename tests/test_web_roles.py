"""The page's people and roles through aiohttp's test client: logging in by name and password,
the token only while nobody is a person, sessions that end on a new password, a removal or
12 idle hours, the role each route needs, and a viewer's pages holding no whole number."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from aiohttp import web as web_app
from aiohttp.test_utils import TestClient, make_mocked_request
from test_web import ROOT, TOKEN, _project, _run, _serve_on, _upload_form, _wait_finished
from test_web_hardening import BOUND, SERVE

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.team import audit
from dialer.team.audit import AuditTrail
from dialer.team.people import People
from dialer.team.roles import Role
from dialer.web import access
from dialer.web.auth import SESSION_COOKIE, TOKEN_PERSON, Auth

PASSWORD = "a long enough password"
SHEET = ROOT / "sample_data" / "contacts.csv"


def _team(root: Path) -> People:
    """One person of each role, named after it (and admin "boss")."""
    people = People(root / "state")
    for role in Role:
        people.add("boss" if role == Role.ADMIN else str(role), role, PASSWORD)
    return people


async def _login_as(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log in as `name`: this client's csrf token from then on."""
    answer = await client.post(
        "/login", data={"name": name, "password": password}, allow_redirects=False
    )
    assert answer.status == 303, await answer.text()
    page = await (await client.get("/")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _concrete(pattern: str) -> str:
    """A path of `pattern` naming nothing that exists (the handler's own 404 if it runs)."""
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "csv" if m.group(1) == "kind" else "zz", pattern)


def _registered(app: web_app.Application) -> set[tuple[str, str]]:
    """(method, pattern) of every route of `app`, HEAD counted as GET."""
    return {
        ("GET" if r.method == "HEAD" else r.method, r.resource.canonical)
        for r in app.router.routes()
    }


def test_every_route_the_page_registers_is_in_the_role_table(tmp_path):
    registered = _registered(web.Server(_project(tmp_path), TOKEN, {}).app())
    assert registered - set(access.ROUTES) == set()
    # The audit page's routes are registered by the audit helper's module; admin's already.
    assert set(access.ROUTES) - registered <= {("GET", "/audit"), ("GET", "/audit.csv")}
    assert access.needed("POST", "/not/in/the/table") == access.NOBODY


def test_each_role_is_refused_every_route_above_it_with_a_page_naming_the_role(tmp_path):
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        registered = _registered(client.app)
        for role in Role:
            name = "boss" if role == Role.ADMIN else str(role)
            csrf = await _login_as(client, name)
            for (method, pattern), need in access.ROUTES.items():
                if need is None or pattern == "/logout" or (method, pattern) not in registered:
                    continue
                path = _concrete(pattern)
                if method == "GET":
                    answer = await client.get(path, allow_redirects=False)
                else:
                    answer = await client.post(path, data={"csrf": csrf}, allow_redirects=False)
                text = await answer.text()
                if role >= need:
                    assert answer.status != 403, (name, method, path, text[:300])
                else:
                    assert answer.status == 403, (name, method, path)
                    assert f"This needs the role {need}; you are a" in text, text
                    assert f" {role}, who " in text and "<html" in text

    _serve_on(root, body)


def test_a_viewers_forged_launch_is_refused_and_nobody_is_called(tmp_path):
    root = _project(tmp_path)
    _team(root)
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login_as(client, "caller")
            checked = await client.post(
                "/dry-runs",
                data=_upload_form(csrf, "example", "c.csv", SHEET.read_bytes()),
                allow_redirects=False,
            )
            dry_id = checked.headers["Location"].rsplit("/", 1)[1]
            csrf = await _login_as(client, "viewer")
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert 'id="launch-form"' not in page and 'id="upload-form"' not in page
            forged = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": "49"},
                allow_redirects=False,
            )
            assert forged.status == 403
            assert "This needs the role caller; you are a viewer" in await forged.text()
            assert server.jobs.runs == {}

        _serve_on(root, body, env)
        assert fake.received == []


def test_a_new_role_applies_at_once_and_a_new_password_or_removal_ends_the_session(
    tmp_path, cli, monkeypatch
):
    root = _project(tmp_path)
    _team(root)

    def users(*args: str, stdin: str = "") -> None:
        """`dialer users ...` on the page's folder, as the admin at its terminal types it."""
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        result = cli(["users", *args, "--root", str(root)])
        assert result.code == 0, result.err

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "editor")
        assert (await client.get("/campaigns/new")).status == 200
        users("role", "editor", "viewer")
        refused = await client.get("/campaigns/new")
        assert refused.status == 403 and "you are a viewer" in await refused.text()
        users("passwd", "editor", "--password-stdin", stdin="another long password\n")
        gone = await client.get("/", allow_redirects=False)
        assert gone.status == 303 and gone.headers["Location"] == "/login"
        posted = await client.post("/optouts/add", data={"csrf": csrf, "numbers": "1"})
        assert posted.status == 403
        await _login_as(client, "caller")
        users("remove", "caller")
        removed = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
        assert removed.status == 403
        assert (await client.get("/", allow_redirects=False)).status == 303

    _serve_on(root, body)


def test_a_session_ends_after_twelve_idle_hours_and_each_request_moves_the_end(tmp_path):
    root = _project(tmp_path)
    _team(root)
    now = [1000.0]

    async def body(client: TestClient, server: web.Server) -> None:
        server.auth.clock = lambda: now[0]
        await _login_as(client, "viewer")
        idle = server.settings.session_seconds
        for _ in range(3):  # 3 requests 11 hours apart: 33 hours, never 12 idle
            now[0] += idle - 3600
            assert (await client.get("/", allow_redirects=False)).status == 200
        now[0] += idle + 1
        answer = await client.get("/", allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/login"
        cookie = (
            await client.post(
                "/login", data={"name": "viewer", "password": PASSWORD}, allow_redirects=False
            )
        ).headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie

    _serve_on(root, body)


def test_the_token_logs_in_until_a_person_exists_then_is_refused(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        login = await (await client.get("/login")).text()
        assert "dialer users add NAME --role admin" in login and 'name="token"' in login
        answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
        assert answer.status == 303
        assert "token (admin)" in await (await client.get("/")).text()
        People(server.root / "state").add("alice", Role.ADMIN, PASSWORD)
        # The token's session ends with the first person, and the token logs in no more.
        assert (await client.get("/", allow_redirects=False)).status == 303
        for form in ({"token": TOKEN}, {"name": "token", "password": TOKEN}):
            refused = await client.post("/login", data=form, allow_redirects=False)
            text = await refused.text()
            assert refused.status == 403 and "The shared token no longer logs in" in text
        login = await (await client.get("/login")).text()
        assert "The shared token no longer logs in" in login and 'name="password"' in login
        await _login_as(client, "alice")

    _run(tmp_path, body)


def test_a_wrong_name_and_a_wrong_password_look_the_same_and_are_in_the_audit_trail(tmp_path):
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        answers = []
        for name, password in (("viewer", "wrong password!"), ("nobody", PASSWORD)):
            answer = await client.post("/login", data={"name": name, "password": password})
            answers.append((answer.status, await answer.text()))
        assert answers[0] == answers[1] and answers[0][0] == 403
        assert "Wrong name or password." in answers[0][1]
        await _login_as(client, "viewer")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await (await client.get("/")).text())
        await client.post("/logout", data={"csrf": csrf.group(1)})

    _serve_on(root, body)
    actions = [(e.who, e.action) for e in AuditTrail(root / "state").entries()]
    assert actions == [
        ("viewer", audit.LOGIN_FAILED),
        ("?", audit.LOGIN_FAILED),  # a name nobody has is not kept: it may be a password
        ("viewer", audit.LOGIN),
        ("viewer", audit.LOGOUT),
    ]


def test_the_login_throttle_holds_names_and_passwords_as_it_held_the_token(tmp_path):
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        # Judged at once (each password's scrypt in a thread), all of them are counted.
        answers = await asyncio.gather(
            *(
                client.post("/login", data={"name": "viewer", "password": f"guess number {i}"})
                for i in range(20)
            )
        )
        capacity = int(server.settings.login_per_client[0])
        assert sorted(a.status for a in answers) == [403] * capacity + [429] * (20 - capacity)
        held = await client.post("/login", data={"name": "viewer", "password": PASSWORD})
        assert held.status == 429 and "Retry-After" in held.headers

    _serve_on(root, body)


def test_people_page_adds_re_roles_sets_passwords_and_removes_with_the_clis_rules(tmp_path):
    root = _project(tmp_path)
    people = People(root / "state")
    people.add("boss", Role.ADMIN, PASSWORD)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "boss")
        page = await (await client.get("/people")).text()
        assert 'data-name="boss"' in page

        async def post(path: str, **form: str) -> tuple[int, str]:
            answer = await client.post(path, data={"csrf": csrf, **form})
            return answer.status, await answer.text()

        new = {"name": "carol", "role": "caller", "password": PASSWORD, "password2": PASSWORD}
        status, text = await post("/people/add", **new)
        assert status == 200 and "carol added as a caller." in text
        for form, says in (
            ({**new, "name": "dave", "password": "short", "password2": "short"}, "12"),
            ({**new, "name": "dave", "password2": PASSWORD + "x"}, "The two passwords differ"),
            ({**new, "name": "dave", "role": "boss"}, "unknown role"),
            (new, "carol"),
        ):
            status, text = await post("/people/add", **form)
            assert status == 400 and says in text, text
        status, text = await post("/people/role", name="boss", role="editor")
        assert status == 400 and "admin" in text  # the last admin stays one
        assert people.get("boss").role == Role.ADMIN
        status, text = await post("/people/role", name="carol", role="editor")
        assert "carol is now an editor." in text and people.get("carol").role == Role.EDITOR
        epoch = people.get("carol").epoch
        status, text = await post(
            "/people/password",
            name="carol",
            password="a new long password",
            password2="a new long password",
        )
        assert status == 200 and people.get("carol").epoch == epoch + 1
        status, text = await post("/people/remove", name="carol")
        assert 'id="remove-question"' in text and people.get("carol") is not None
        status, text = await post("/people/remove", name="carol", confirm="yes")
        assert "carol removed" in text and people.get("carol") is None
        status, text = await post("/people/remove", name="boss", confirm="yes")
        assert status == 400 and people.get("boss") is not None

    _serve_on(root, body)
    changes = [
        (e.who, e.action, e.details.get("name"))
        for e in AuditTrail(root / "state").entries()
        if e.action.startswith("person_")
    ]
    assert changes == [
        ("boss", audit.PERSON_ADDED, "carol"),
        ("boss", audit.PERSON_ROLE, "carol"),
        ("boss", audit.PERSON_PASSWORD, "carol"),
        ("boss", audit.PERSON_REMOVED, "carol"),
    ]


def _sheet_numbers() -> set[str]:
    """Every number of the sample sheet as it is written and as the page may show it."""
    with SHEET.open(encoding="utf-8", newline="") as f:
        raw = [row["Phone"] for row in csv.DictReader(f)]
    found = set()
    # A cell in scientific notation (9.18765E+11) lost its digits: not a whole number.
    for number in (n for n in raw if "E+" not in n.upper()):
        digits = re.sub(r"\D", "", number)
        found |= {number.strip(), digits, digits[-10:]}  # +917359043943 holds 7359043943
    return {n for n in found if len(re.sub(r"\D", "", n)) >= 7}


def test_a_viewers_pages_hold_no_whole_number_after_a_real_run(tmp_path):
    root = _project(tmp_path)
    _team(root)
    numbers = _sheet_numbers()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login_as(client, "boss")
            checked = await client.post(
                "/dry-runs",
                data=_upload_form(csrf, "example", "c.csv", SHEET.read_bytes()),
                allow_redirects=False,
            )
            dry_url = checked.headers["Location"]
            dry_id = dry_url.rsplit("/", 1)[1]
            check = await (await client.get(dry_url)).text()
            ready = re.search(r'name="count" value="(\d+)"', check).group(1)
            launched = await client.post(
                f"{dry_url}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": ready},
                allow_redirects=False,
            )
            run_url = launched.headers["Location"]
            await _wait_finished(server, run_url.rsplit("/", 1)[1])()
            whole = sorted(numbers, key=len)[-1]
            await client.post(
                "/optouts/add", data={"csrf": csrf, "numbers": whole, "reason": "asked"}
            )
            admin_page = await (await client.get(dry_url)).text()
            assert any(n in admin_page for n in numbers)  # the others see them whole
            await _login_as(client, "viewer")
            pages = [
                "/",
                dry_url,
                run_url,
                f"{run_url}/events",
                "/campaigns/example/results",
                "/schedules",
                "/optouts",
                f"/optouts?q={whole}",
            ]
            for path in pages:
                answer = await client.get(path)
                text = await answer.text()
                assert answer.status == 200, (path, text[:300])
                shown = [n for n in numbers if n in text]
                assert shown == [], (path, shown)
            assert dry_id

        _serve_on(root, body, env)


@pytest.mark.parametrize("env", [{}, {web.TOKEN_ENV: ""}])
def test_serve_with_neither_a_person_nor_a_token_refuses_in_one_line(tmp_path, cli, env):
    root = _project(tmp_path)
    result = cli(["serve", "--root", str(root), "--port", "0"], env=env)
    assert result.code == 2
    assert "add a person" in result.err and web.TOKEN_ENV in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_serve_starts_without_a_token_once_people_exist(tmp_path):
    root = _project(tmp_path)
    _team(root)
    env = {k: v for k, v in os.environ.items() if k != web.TOKEN_ENV}
    proc = subprocess.Popen(
        [*SERVE, "--root", str(root), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # the first line, printed once it is listening
        assert re.match(r"dialer serve: http://127\.0\.0\.1:\d+/ \(log in with your name", line), (
            line,
            proc.poll() is not None and proc.communicate(),
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=BOUND)


def test_the_viewers_safety_net_masks_every_long_digit_run_but_the_csrf_token():
    csrf = "ab1234567cd"
    shown = access.mask_digits(f"x 5551234567 +91 73590 43943 {csrf} on 2024-03-02, 12345", csrf)
    assert "5551234567" not in shown and "73590 43943" not in shown
    assert csrf in shown and "on 2024-03-02, 12345" in shown


def test_an_open_run_pages_event_stream_does_not_keep_its_session_alive():
    now = [0.0]
    auth = Auth(TOKEN, clock=lambda: now[0])
    request = make_mocked_request(
        "GET", "/runs/x/events", headers={"Cookie": f"{SESSION_COOKIE}={auth.log_in(TOKEN_PERSON)}"}
    )
    idle = auth.settings.session_seconds
    now[0] = idle - 1
    assert auth.session(request, active=False) is not None  # looked at, not moved on
    now[0] = idle + 1
    assert auth.session(request, active=False) is None
