"""Self-service menus in the running server: a caller who dials a menu's number hears its
prompt and is sent where their key press says.

`MenuService` is a `MediaService`: it answers the numbers of the tenant's menus (table
``voicemail_menus``, managed with ``frontdesk menu ...``), runs `media.ivr.run_menu`, and
acts on the branch it returns: ``menu:N`` runs another menu, ``voicemail:M`` leaves a message
in mailbox M (through the voicemail service), ``extension:N`` hands the caller back to the
call engine by a blind transfer (REFER: the caller's phone calls N through the engine, with
the usual ringing, forking and voicemail on no answer), ``hangup`` says goodbye. A flow
(``routing``) can take branches itself by setting ``branch_handler``.

Menus are read from the database into memory (refreshed every few seconds); the SIP path
never waits on the database. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from frontdesk.media.ivr import MenuError, MenuSpec, parse_branch, run_menu
from frontdesk.media.model import Menu
from frontdesk.media.prompts import PromptLibrary
from frontdesk.pbx.directory import TenantInfo
from frontdesk.pbx.endpoint import MediaEndpoint
from frontdesk.pbx.media_call import CallScript, MediaCall
from frontdesk.store.db import Database

log = logging.getLogger("frontdesk.ivr")

REFRESH_SECONDS = 2.0
MAX_HOPS = 10  # menus leading to menus: a loop in the configuration must not trap a caller

BranchHandler = Callable[[MediaCall, str], Awaitable[bool]]


class MenuService:
    def __init__(
        self, db: Database, endpoint: MediaEndpoint, prompts: PromptLibrary, voicemail: Any = None
    ) -> None:
        self.db = db
        self.endpoint = endpoint
        self.prompts = prompts
        self.voicemail = voicemail
        self.menus: dict[tuple[int, str], MenuSpec] = {}
        self.branch_handler: BranchHandler | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _load(self) -> dict[tuple[int, str], MenuSpec]:
        out: dict[tuple[int, str], MenuSpec] = {}
        with self.db.session() as s:
            for row in s.scalars(select(Menu)):
                try:
                    out[(row.tenant_id, row.number)] = MenuSpec(
                        row.name,
                        row.prompt,
                        dict(row.choices),
                        row.timeout_seconds,
                        row.retries,
                        row.invalid_prompt,
                        default_branch=row.default_branch,
                    )
                except MenuError as exc:
                    log.error("menu %s is not usable and is not answered: %s", row.number, exc)
        return out

    async def refresh(self) -> None:
        self.menus = await asyncio.to_thread(self._load)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.exception("menus: could not refresh from the database")

    # --- MediaService ---------------------------------------------------------------------
    def script_for(self, tenant: TenantInfo, dialled: str, caller: str) -> CallScript | None:
        spec = self.menus.get((tenant.id, dialled))
        if spec is None:
            return None

        async def run(call: MediaCall) -> None:
            await self.run(call, spec)

        return run

    def script_for_unanswered(self, tenant: TenantInfo, callee: str) -> CallScript | None:
        return None

    # --- running a menu and its branches ----------------------------------------------------
    async def run(self, call: MediaCall, spec: MenuSpec) -> None:
        session = call.session
        assert session is not None
        for _hop in range(MAX_HOPS):
            result = await run_menu(session, spec, self.prompts.speech)
            branch = result.branch or "hangup"
            if self.branch_handler is not None and await self.branch_handler(call, branch):
                return
            kind, target = parse_branch(branch)
            if kind == "menu":
                following = self.menus.get((call.tenant.id, target))
                if following is None:
                    log.error("menu %s: branch %s leads to no menu; hanging up", spec.name, branch)
                    break
                spec = following
                continue
            await self._leave(call, kind, target)
            return
        else:
            log.error(
                "menu %s: %d menus in a row; the menus loop — hanging up", spec.name, MAX_HOPS
            )
        await session.play(await self.prompts.speech("Goodbye."))

    async def _leave(self, call: MediaCall, kind: str, target: str) -> None:
        session = call.session
        assert session is not None
        if kind == "voicemail":
            view = self.voicemail.mailbox(call.tenant.id, target) if self.voicemail else None
            if view is not None:
                from frontdesk.pbx.voicemail_calls import deposit

                await deposit(self.voicemail, call, view)
                return
            log.error("menu branch voicemail:%s: there is no such mailbox", target)
        elif kind == "extension":
            status = await self.endpoint.transfer(call, target)
            if status == 0 or 200 <= status < 300:
                return
            log.warning("call %s: transfer to %s failed (%d)", call.label, target, status)
            await session.play(
                await self.prompts.speech("Sorry, that extension is not available right now.")
            )
        await session.play(await self.prompts.speech("Goodbye."))


async def start_menus(server: Any, endpoint: MediaEndpoint) -> MenuService:
    """Create and start the menu service for a running server (see `pbx.media_setup`)."""
    from frontdesk.pbx.voicemail import VoicemailService

    voicemail = next((s for s in endpoint.services if isinstance(s, VoicemailService)), None)
    prompts = voicemail.prompts if voicemail is not None else PromptLibrary(server.config.data_dir)
    service = MenuService(server.db, endpoint, prompts, voicemail)
    endpoint.services.append(service)
    await service.start()
    return service
