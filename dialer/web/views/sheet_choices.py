"""The sheets the campaign form previews and test-calls with: every kept upload and checked
sheet still on the server, each file listed once, and each one's header (probed once per
file by a memory-capped child, for the "Insert a column" menu and a new campaign's guesses).

    sheets = SheetChoices(site, children)
    sheets.all()                    # newest first: [SheetChoice(id, path, name), ...]
    sheets.get(sheet_id)            # None once its file is gone
    await sheets.headers(choice)    # () when the sheet cannot be read (or every child is busy)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dialer.core.statuses import DialerError
from dialer.web.services.child_processes import ChildQueue, ChildrenBusy, probe_upload
from dialer.web.services.uploads import Kept
from dialer.web.site import Site


@dataclasses.dataclass(frozen=True, slots=True)
class SheetChoice:
    """A sheet the form previews and test-calls with: a kept upload or a checked sheet."""

    id: str
    path: Path
    name: str  # the uploader's file name: shown, never used as a path

    def as_kept(self) -> Kept:
        return Kept(self.id, self.path, self.name, "")


class SheetChoices:
    """The sheets of one server, as the campaign form offers them; header probes take a place
    in `children`, the form's queue."""

    def __init__(self, site: Site, children: ChildQueue) -> None:
        self.site = site
        self.children = children

    def all(self) -> list[SheetChoice]:
        """The sheets still on the server, newest first, each file once: a file uploaded
        again (same name, same size) is the newest of them only."""
        found: list[tuple[float, SheetChoice]] = []
        seen: set[Path] = set()
        kept = [SheetChoice(k.id, k.path, k.name) for k in self.site.uploads.all_kept()]
        checked = [
            SheetChoice(d.id, d.upload, d.sheet_name)
            for d in reversed(list(self.site.jobs.dry_runs.values()))
        ]
        for choice in (*kept, *checked):
            if choice.path in seen:
                continue
            seen.add(choice.path)
            try:
                st = choice.path.stat()
            except OSError:
                continue
            found.append((st.st_mtime, choice))
        found.sort(key=lambda pair: -pair[0])
        sizes: set[tuple[str, int]] = set()
        unique = []
        for _, choice in found:
            same = (choice.name, choice.path.stat().st_size)
            if same not in sizes:
                sizes.add(same)
                unique.append(choice)
        return unique

    def get(self, sheet_id: str) -> SheetChoice | None:
        """The kept upload or the checked sheet `sheet_id`, if its file is still there."""
        if not sheet_id:
            return None
        kept = self.site.uploads.kept(sheet_id)
        if kept is not None:
            return SheetChoice(kept.id, kept.path, kept.name)
        dry = self.site.jobs.dry_runs.get(sheet_id)
        if dry is not None and dry.upload.is_file():
            return SheetChoice(dry.id, dry.upload, dry.sheet_name)
        return None

    def default(self, sheets: list[SheetChoice], campaign: str) -> str:
        """The newest sheet checked for or kept with this campaign, else the newest sheet."""
        for choice in sheets:
            dry = self.site.jobs.dry_runs.get(choice.id)
            kept = self.site.uploads.kept(choice.id)
            owner = dry.campaign if dry is not None else kept.campaign if kept is not None else ""
            if campaign and owner == campaign:
                return choice.id
        return sheets[0].id if sheets else ""

    async def headers(self, choice: SheetChoice) -> tuple[str, ...]:
        """The sheet's header, probed once per file by a memory-capped child; () if unread."""
        cache = self.site.uploads.headers
        if choice.path not in cache:
            try:
                async with self.children:
                    probe = await probe_upload(self.site.settings, choice.as_kept(), None)
            except (DialerError, ChildrenBusy):
                return ()  # no column menu this time; asked again next time
            cache[choice.path] = tuple(probe.headers)
        return cache[choice.path]
