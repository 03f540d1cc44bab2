"""The page reads campaigns/ once per file change: an edited file is seen on the next request,
an unchanged one is not parsed again (counted through the server's injectable loader)."""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from conftest import with_pythonpath

from dialer import web
from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.web.services.campaigns import CampaignShelf

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "correct-horse-battery-staple"


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "campaigns").mkdir(parents=True)
    text = (ROOT / "campaigns" / "example.toml").read_text("utf-8")
    text = text.replace("../sample_data/", f"{ROOT / 'sample_data'}/")
    (root / "campaigns" / "example.toml").write_text(text, "utf-8")
    (root / "campaigns" / "broken.toml").write_text('name = "broken"\nbogus = 1\n')
    return root


class CountingLoader:
    def __init__(self) -> None:
        self.loads: Counter[str] = Counter()

    def __call__(self, path: Path) -> Campaign:
        self.loads[Path(path).name] += 1
        return load_campaign(path)


def _agent(text: str) -> int:
    return int(re.search(r"(?m)^agent_id = (\d+)", text).group(1))


def _set_agent(path: Path, agent: int) -> None:
    """Rewrite the agent id keeping the file's size (digits for digits)."""
    text = path.read_text("utf-8")
    old = _agent(text)
    assert len(str(agent)) == len(str(old))
    path.write_text(text.replace(f"agent_id = {old}", f"agent_id = {agent}"), "utf-8")


def test_an_unchanged_campaign_is_parsed_once_and_an_edited_one_again(tmp_path):
    root = _project(tmp_path)
    loader = CountingLoader()
    shelf = CampaignShelf(root / "campaigns", loader)
    first = shelf.all()
    assert isinstance(first["example"], Campaign) and "bogus" in first["broken"]
    for _ in range(5):
        assert shelf.all() == first
        assert shelf.get("example") is first["example"]
    assert loader.loads == {"example.toml": 1, "broken.toml": 1}

    path = root / "campaigns" / "example.toml"
    old = _agent(path.read_text("utf-8"))
    new = old + 1 if old % 10 != 9 else old - 1
    st = path.stat()
    _set_agent(path, new)
    # Same size; only the modification time tells the edit apart.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == st.st_size
    assert shelf.get("example").agent_id == new
    assert loader.loads == {"example.toml": 2, "broken.toml": 1}

    # Same modification time, other size: seen too.
    st = path.stat()
    path.write_text(path.read_text("utf-8") + "\n# a comment\n", "utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert shelf.get("example").agent_id == new
    assert loader.loads["example.toml"] == 3

    # A deleted file disappears (and is forgotten, not parsed).
    (root / "campaigns" / "broken.toml").unlink()
    assert set(shelf.all()) == {"example"}
    assert loader.loads == {"example.toml": 3, "broken.toml": 1}


def test_the_page_sees_an_edited_campaign_and_does_not_reparse_an_unchanged_one(tmp_path):
    root = _project(tmp_path)
    loader = CountingLoader()
    server = web.Server(root, TOKEN, with_pythonpath({}), load=loader)
    path = root / "campaigns" / "example.toml"
    old = _agent(path.read_text("utf-8"))
    new = old + 1 if old % 10 != 9 else old - 1

    async def go() -> None:
        async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
            answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
            assert answer.status == 303
            for _ in range(3):
                page = await (await client.get("/")).text()
                assert f"(agent {old}," in page
            assert loader.loads == {"example.toml": 1, "broken.toml": 1}
            st = path.stat()
            _set_agent(path, new)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
            page = await (await client.get("/")).text()
            assert f"(agent {new}," in page and f"(agent {old}," not in page
            assert loader.loads == {"example.toml": 2, "broken.toml": 1}

    asyncio.run(go())
