"""The opt-out register page: people no campaign of the folder calls again (SPEC 12).

    GET  /optouts?q=NUMBER&region=IN     search by the whole number or its last digits
    POST /optouts/add                    numbers typed, with a reason
    POST /optouts/import                 a sheet with a phone column: all or nothing
    POST /optouts/remove                 first the confirm step; with confirm and a reason,
                                         the removal (kept in the history)

An editor may add and import, an admin remove (`dialer.web.access`). The history names who
acted by the person's name (`Session.who`: "alice", or "token"). Numbers are masked except a
number the user typed whole (and, for a viewer, that one too).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from dialer.core.masking import mask_phone
from dialer.core.statuses import DialerError, UsageError
from dialer.ledger.optouts import NotOnRegister
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.services import optout_register as register
from dialer.web.services.jobs import ChecksBusy
from dialer.web.services.page_audit import masked, masked_numbers, sheet_details
from dialer.web.services.uploads import BadUpload, UploadForm, UploadTooLarge
from dialer.web.site import Site

IMPORT_ROUTE = "/optouts/import"
SHOWN = 20  # entries listed at once: the newest, or those a search by last digits finds


def add_routes(app: web.Application, site: Site) -> None:
    pages = OptOutPages(site)
    app.router.add_get("/optouts", pages.page)
    app.router.add_post("/optouts/add", pages.add)
    app.router.add_post(IMPORT_ROUTE, pages.import_sheet)
    app.router.add_post("/optouts/remove", pages.remove)


class OptOutPages:
    """The routes of the register page."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.state = site.root / "state"

    def _who(self, request: web.Request) -> str:
        session = session_of(request)
        return session.who if session is not None else "page"

    async def page(
        self,
        request: web.Request,
        *,
        error: str = "",
        notice: str = "",
        bad_rows: list[str] | None = None,
        status: int = 200,
        query: str | None = None,
    ) -> web.Response:
        """The register: the search form and what it found (the newest entries without a
        query), the add and import forms."""
        q = request.query.get("q", "") if query is None else query
        region_text = request.query.get("region", "")
        found: list[register.Found] = []
        try:
            region = register.region_of(region_text)
            found = await asyncio.to_thread(register.search, self.state, q, SHOWN, region)
        except DialerError as exc:
            error = error or str(exc)
        return self.site.render(
            request,
            "optouts.html",
            status,
            query=q,
            region=region_text,
            found=[_shown(f) for f in found],
            error=error,
            notice=notice,
            bad_rows=bad_rows or [],
            limit_mb=self.site.settings.upload_limit // (1024 * 1024),
        )

    async def add(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        try:
            region = register.region_of(str(form.get("region", "")))
            added, already = await asyncio.to_thread(
                register.add_numbers,
                self.state,
                str(form.get("numbers", "")),
                region,
                reason := str(form.get("reason", "")),
                self._who(request),
                self.site.test_calls.clock(),
            )
        except DialerError as exc:
            return await self.page(request, error=str(exc), status=400)
        said = {**masked_numbers(added), "already": len(already), "reason": masked(reason)}
        await self.site.record(request, audit.OPTOUT_ADDED, **said)
        notice = texts.optout_added(len(added), len(already))
        return await self.page(request, notice=notice, query="")

    async def import_sheet(self, request: web.Request) -> web.Response:
        """A sheet's numbers opted out, all or none, read by a child in a check's slot."""
        uploads = self.site.uploads
        form: UploadForm | None = None
        try:
            async with self.site.jobs.check_slot():
                form = await uploads.receive(
                    request, lambda given: check_csrf(request, given), ("reason", "region")
                )
                if form.sheet is None:
                    raise BadUpload(texts.WRONG_SUFFIX)
                return await self._import(request, form)
        except ChecksBusy:
            response = await self.page(
                request, error=texts.checks_busy(self.site.settings), status=503
            )
            response.headers["Retry-After"] = str(self.site.settings.busy_retry_after)
            return response
        except UploadTooLarge:
            return await self.page(request, error=texts.too_large(self.site.settings), status=413)
        except BadUpload as exc:
            return await self.page(request, error=str(exc), status=400)
        except TimeoutError:
            return await self.page(request, error=texts.UPLOAD_TOO_SLOW, status=408)
        finally:
            if form is not None and form.sheet is not None:
                uploads.release(form.sheet, keep=False)  # a list of numbers is not kept

    async def _import(self, request: web.Request, form: UploadForm) -> web.Response:
        assert form.sheet is not None
        reason = form.fields.get("reason", "").strip() or f"imported from {form.sheet_name}"
        try:
            region = register.region_of(form.fields.get("region", ""))
            answer = await register.import_sheet(
                self.site.settings,
                self.state,
                form.sheet,
                {
                    "name": form.sheet_name,
                    "reason": reason,
                    "who": self._who(request),
                    "region": region or "",
                },
            )
        except DialerError as exc:
            return await self.page(request, error=str(exc), status=400, query="")
        if "bad" in answer:
            return await self.page(
                request,
                error=texts.optout_bad_rows(form.sheet_name, int(answer.get("bad_rows", 0))),
                bad_rows=[str(line) for line in answer["bad"]],
                status=400,
                query="",
            )
        sheet = await sheet_details(form.sheet, form.sheet_name)
        said = {"added": answer.get("added", 0), "already": answer.get("already", 0)}
        said["reason"] = masked(reason)
        await self.site.record(request, audit.OPTOUT_IMPORTED, **sheet, **said)
        notice = texts.optout_imported(
            form.sheet_name, int(answer.get("added", 0)), int(answer.get("already", 0))
        )
        return await self.page(request, notice=notice, query="")

    async def remove(self, request: web.Request) -> web.Response:
        """Without `confirm` (or without a reason): the confirm step, nothing removed. With
        both: the entry goes, the history keeps it and why."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        number = register.whole_number(str(form.get("number", "")), None)
        if number is None or not str(form.get("number", "")).strip().startswith("+"):
            return await self.page(request, error=texts.OPTOUT_NOT_WHOLE, status=400)
        reason = str(form.get("reason", ""))
        asked = "reason" in form  # the confirm step was shown and sent back
        if not asked or form.get("confirm") != "yes" or not reason.strip():
            error = ""
            if asked:
                error = (
                    texts.OPTOUT_REMOVE_NEEDS_REASON
                    if not reason.strip()
                    else texts.OPTOUT_REMOVE_CONFIRM
                )
            return await self._confirm(request, number, reason, error)
        try:
            entry = await asyncio.to_thread(
                register.remove,
                self.state,
                number,
                reason,
                self._who(request),
                self.site.test_calls.clock(),
            )
        except NotOnRegister:
            return await self.page(
                request, error=texts.optout_not_on_register(number), status=400, query=number
            )
        except UsageError as exc:
            return await self._confirm(request, number, reason, str(exc))
        except DialerError as exc:  # the register cannot be written: said, nothing removed
            return await self.page(request, error=str(exc), status=400, query=number)
        said = {"number": mask_phone(number), "reason": masked(reason)}
        await self.site.record(request, audit.OPTOUT_REMOVED, **said)
        notice = texts.optout_removed(number, entry.since)
        return await self.page(request, notice=notice, query=number)

    async def _confirm(
        self, request: web.Request, number: str, reason: str, error: str
    ) -> web.Response:
        found = await asyncio.to_thread(register.search, self.state, number, 1, None)
        if not found:
            return await self.page(
                request, error=texts.optout_not_on_register(number), status=400, query=number
            )
        return self.site.render(
            request,
            "optout_remove.html",
            400 if error else 200,
            entry=_shown(found[0]),
            reason=reason,
            ask=texts.OPTOUT_REMOVE_ASK,
            error=error,
        )


def _shown(found: register.Found) -> dict[str, Any]:
    """An entry and its history in the page's words."""
    entry = found.entry
    return {
        "number": found.shown,
        "whole": found.whole,
        "value": entry.called_to if found.whole else "",
        "masked": mask_phone(entry.called_to),
        "since": entry.since,
        "source": texts.source_words(entry.source),
        "who": entry.who,
        "reason": entry.reason,
        "campaign": entry.campaign,
        "call_id": entry.call_id,
        "evidence": entry.evidence,
        "row_reason": entry.row_reason(),
        "history": [
            {
                "at": c.at,
                "action": texts.action_words(c.action),
                "source": texts.source_words(c.source),
                "who": c.who,
                "reason": c.reason,
                "campaign": c.campaign,
                "evidence": c.evidence,
            }
            for c in found.history
        ],
    }
