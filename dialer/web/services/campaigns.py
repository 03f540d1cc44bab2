"""The `campaigns/` folder as the page sees it: each TOML parsed once per change
(`CampaignShelf`), and the campaign each session used last (`LastUsed`).

    shelf = CampaignShelf(root / "campaigns")
    shelf.all()      # {"example": Campaign(...), "broken": "broken.toml: unknown key 'bogus'"}

A file is re-read only when its modification time or size changed, so a page view costs a
`stat` per campaign, not a parse; an edited file is seen on the next request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dialer.campaign.model import NOTIFY_FILE, Campaign
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import campaign_files
from dialer.core.statuses import DialerError

Loader = Callable[[Path], Campaign]
# (st_mtime_ns, st_size) of the file, and of the folder's _notify.toml (read by every campaign
# without a [notify]: a change to it is a change to them).
_Stamp = tuple[int, int, int, int]


class CampaignShelf:
    def __init__(self, folder: Path, load: Loader = load_campaign) -> None:
        self.folder = folder
        self._load = load
        self._cache: dict[Path, tuple[_Stamp, Campaign | DialerError]] = {}

    def load(self, path: Path) -> Campaign:
        """The campaign in `path`, parsed again only if the file changed; raises its error."""
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            return self._load(path)  # raises the loader's own "not found" / "cannot read"
        shared = path.parent / NOTIFY_FILE
        try:
            sh = os.stat(shared)
            stamp = (st.st_mtime_ns, st.st_size, sh.st_mtime_ns, sh.st_size)
        except OSError:
            stamp = (st.st_mtime_ns, st.st_size, 0, -1)
        cached = self._cache.get(path)
        if cached is None or cached[0] != stamp:
            try:
                cached = (stamp, self._load(path))
            except DialerError as exc:
                cached = (stamp, exc)
            self._cache[path] = cached
        if isinstance(cached[1], DialerError):
            raise cached[1].with_traceback(None)  # raised again: not a growing traceback
        return cached[1]

    def all(self) -> dict[str, Campaign | str]:
        """Campaign name -> Campaign, or the one-line error that makes it unusable."""
        paths = campaign_files(self.folder)
        for gone in self._cache.keys() - set(paths):
            del self._cache[gone]
        found: dict[str, Campaign | str] = {}
        for path in paths:
            try:
                campaign = self.load(path)
                found[campaign.name] = campaign
            except DialerError as exc:
                found[path.stem] = str(exc).replace(str(path), path.name)
        return found

    def get(self, name: str) -> Campaign | None:
        """The usable campaign called `name`, if there is one."""
        found = self.all().get(name)
        return found if isinstance(found, Campaign) else None


class LastUsed:
    """The campaign each session created, saved or used last: the one preselected when a
    sheet is uploaded (never a silent default such as the first file in the folder).

        last = LastUsed(limit=1_000)
        last.remember(session_key, "spring-sale-2026")
        last.of(session_key)        # "spring-sale-2026"

    Kept in memory by a session's key (its CSRF token, unique per session); at most `limit`
    sessions, the oldest forgotten first."""

    __slots__ = ("_limit", "_names")

    def __init__(self, limit: int = 1_000) -> None:
        self._limit = limit
        self._names: dict[str, str] = {}

    def remember(self, session_key: str, name: str) -> None:
        if not session_key:
            return
        self._names.pop(session_key, None)
        while self._names and len(self._names) >= self._limit:
            del self._names[next(iter(self._names))]
        self._names[session_key] = name

    def of(self, session_key: str) -> str:
        return self._names.get(session_key, "")
