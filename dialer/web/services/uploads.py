"""The `uploads/` folder: sheets streamed to disk under names the server picks, held while a
check reads them, and deleted after `upload_keep_seconds` or beyond the size and count caps.

    form = await uploads.receive(request, check_csrf=...)   # UploadForm(campaign, sheet, ...)
    kept = uploads.keep(form.sheet, form.sheet_name, "")    # /uploads/{kept.id}: choose next
    ...
    uploads.release(form.sheet, keep=True)                  # the check and a launch use it

A sheet is uploaded before a campaign is chosen (SPEC 11, issue 16): it is kept with no
campaign, and each campaign then chosen for it gets its own `Kept` (its column page).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dialer.web import texts
from dialer.web.settings import Settings

SUFFIXES = (".csv", ".xlsx")
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(csv|xlsx)$")  # only what the server itself wrote


class UploadTooLarge(Exception):
    pass


class BadUpload(Exception):
    """An upload refused with a message for the page (400)."""


@dataclass(frozen=True, slots=True)
class Kept:
    """An upload kept for its campaign: the column page and the check page find it by `id`,
    so an error never makes the user pick the file again."""

    id: str
    path: Path
    name: str  # the uploader's file name: shown, never used as a path
    campaign: str  # "" until a campaign is chosen for it


@dataclass(frozen=True, slots=True)
class UploadForm:
    campaign: str | None
    sheet: Path | None  # stored and held in use until released
    sheet_name: str  # the uploader's file name: shown, never used as a path
    fields: dict[str, str] = field(default_factory=dict)  # the small fields asked for


class Uploads:
    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.in_use: set[Path] = set()  # the sheets of the checks under way
        self._kept: dict[str, Kept] = {}  # id -> upload, while its file lasts
        # Each kept sheet's header, once probed (the campaign form's column menu and guesses).
        self.headers: dict[Path, tuple[str, ...]] = {}

    async def receive(
        self,
        request: web.Request,
        check_csrf: Callable[[str], None],
        names: tuple[str, ...] = ("campaign",),
    ) -> UploadForm:
        """Read the upload form, streaming its sheet to disk once the CSRF token is checked;
        the small fields `names` (each at most `field_limit` bytes) are kept in `fields`.

        Raises BadUpload, UploadTooLarge, TimeoutError (a stalled upload) or what `check_csrf`
        raises; whatever is raised, no sheet is left behind."""
        fields: dict[str, str] = {}
        stored: Path | None = None
        name = ""
        try:
            try:
                if request.content_type.split("/")[0] != "multipart":  # aiohttp would assert
                    raise BadUpload(texts.UNREADABLE_UPLOAD)
                reader = await request.multipart()
                async with asyncio.timeout(self.settings.upload_seconds):
                    while (part := await reader.next()) is not None:
                        if not isinstance(part, BodyPartReader):
                            continue  # a nested multipart is nothing this form sends
                        if part.name == "csrf" or part.name in names:
                            fields[part.name] = await self._read_field(part)
                            if part.name == "csrf":
                                check_csrf(fields["csrf"])
                        elif part.name == "sheet" and stored is None:
                            check_csrf(fields.get("csrf", ""))
                            name = self._sheet_name(part.filename)
                            suffix = Path(name).suffix.lower()
                            if suffix not in SUFFIXES:
                                raise BadUpload(texts.WRONG_SUFFIX)
                            stored = self._new(suffix)
                            await self._store(part, stored)
            except (ValueError, HttpProcessingError):
                # A malformed form: a NUL in a part's header, a broken boundary, bad encoding.
                raise BadUpload(texts.UNREADABLE_UPLOAD) from None
        except BaseException:  # refused, or the browser went away mid-upload
            if stored is not None:
                self.release(stored, keep=False)
            raise
        return UploadForm(fields.get("campaign"), stored, name, fields)

    def release(self, sheet: Path, *, keep: bool) -> None:
        """The check is done with `sheet`; a refused sheet of phone numbers is not kept."""
        self.in_use.discard(sheet)
        if not keep:
            sheet.unlink(missing_ok=True)
            self._forget({sheet})

    def keep(self, sheet: Path, name: str, campaign: str) -> Kept:
        """Name a stored sheet, for `campaign` ("" for none yet), for the pages that come back
        to it (the same one if named so before)."""
        found = self.kept_for(sheet, campaign)
        if found is None:
            found = Kept(secrets.token_urlsafe(12), sheet, name, campaign)
            self._kept[found.id] = found
        return found

    def kept(self, upload_id: str) -> Kept | None:
        """The kept upload `upload_id`, if its file is still there (pruned: gone)."""
        found = self._kept.get(upload_id)
        if found is not None and not found.path.is_file():
            self._forget({found.path})
            return None
        return found

    def kept_for(self, sheet: Path, campaign: str | None = None) -> Kept | None:
        """The kept upload of `sheet` (for `campaign`, when given)."""
        return next(
            (
                k
                for k in self._kept.values()
                if k.path == sheet and (campaign is None or k.campaign == campaign)
            ),
            None,
        )

    def all_kept(self) -> list[Kept]:
        """Every kept upload whose file is still there, newest first, each file once."""
        seen: set[Path] = set()
        found = []
        for kept in reversed(list(self._kept.values())):
            if kept.path not in seen and kept.path.is_file():
                seen.add(kept.path)
                found.append(kept)
        return found

    def _forget(self, deleted: set[Path]) -> None:
        for key in [k for k, v in self._kept.items() if v.path in deleted]:
            del self._kept[key]
        for path in deleted:
            self.headers.pop(path, None)

    async def prune(self, also_keep: set[Path]) -> set[Path]:
        """Delete old uploads, never those in use or in `also_keep`; the deleted paths."""
        keep = self.in_use | also_keep
        deleted = set(await asyncio.to_thread(prune_uploads, self.folder, keep, self.settings))
        self._forget(deleted)
        return deleted

    def _new(self, suffix: str) -> Path:
        """A server-chosen name (nothing of the client's file name), held in use at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{secrets.token_hex(16)}{suffix}"
        self.in_use.add(path)
        return path

    def _sheet_name(self, filename: str | None) -> str:
        """The uploader's file name, for display only; control characters are refused."""
        name = Path(filename or "").name[: self.settings.sheet_name_chars]
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise BadUpload(texts.CONTROL_CHARACTERS)
        return name

    async def _read_field(self, part: BodyPartReader) -> str:
        """A small form field, read no further than `field_limit` bytes."""
        limit = self.settings.field_limit
        data = b""
        while chunk := await part.read_chunk(limit):
            data += chunk
            if len(data) > limit:
                raise BadUpload(texts.MALFORMED_FORM)
        return data.decode("utf-8", "replace")

    async def _store(self, part: BodyPartReader, path: Path) -> None:
        """Stream the sheet to `path`, no larger than `upload_limit`."""
        size = 0
        with open(path, "xb") as f:
            while chunk := await part.read_chunk(self.settings.upload_chunk):
                size += len(chunk)
                if size > self.settings.upload_limit:
                    raise UploadTooLarge
                f.write(chunk)


def prune_uploads(
    folder: Path, in_use: set[Path], settings: Settings, *, now: float | None = None
) -> list[Path]:
    """Delete uploads older than `upload_keep_seconds`, then the oldest until the rest fit the
    caps.

    Oldest first rather than refusing new sheets: a forgotten week-old upload must not stop
    today's check, and a check whose sheet is gone cannot be launched (its fingerprint no
    longer matches), so nobody is called from a sheet that was deleted. Files in use (a check
    under way, a run calling) are never deleted. Blocking: run in a thread.
    """
    files: list[Aged] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        if not UPLOAD_NAME.match(path.name):
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        files.append(Aged(st.st_mtime, st.st_size, (path,)))
    return prune_oldest(files, in_use, settings, now=now)


@dataclass(frozen=True, slots=True)
class Aged:
    """Files kept and deleted together (an upload; a check's report and its summary), known
    by the first."""

    mtime: float
    size: int
    paths: tuple[Path, ...]


def prune_oldest(
    found: list[Aged], in_use: set[Path], settings: Settings, *, now: float | None = None
) -> list[Path]:
    """The upload rules, for uploads and for the page's check reports alike: delete what is
    older than `upload_keep_seconds`, then the oldest until the rest fit `uploads_max_bytes`
    and `uploads_max_files`; never what `in_use` holds. The first path of each deleted
    group. Blocking: run in a thread."""
    now = time.time() if now is None else now
    deleted: list[Path] = []
    total = sum(f.size for f in found)
    count = len(found)
    for aged in sorted(found, key=lambda f: (f.mtime, f.paths)):
        too_old = now - aged.mtime > settings.upload_keep_seconds
        over = total > settings.uploads_max_bytes or count > settings.uploads_max_files
        if aged.paths[0] in in_use or not (too_old or over):
            continue
        try:
            aged.paths[0].unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        for other in aged.paths[1:]:
            with contextlib.suppress(OSError):
                other.unlink()
        deleted.append(aged.paths[0])
        total -= aged.size
        count -= 1
    return deleted
