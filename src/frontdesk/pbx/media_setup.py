"""Wiring for media inside the running server: the media endpoint, its RTP port range, the
echo test, voicemail (with message-waiting) and self-service menus.

`start_media(server)` is called once by `PbxServer.start` after the engine exists; it plugs
the endpoint into the engine (``engine.endpoint``, the B2BUA's no-answer hook), gives it the
server's flush as ``wakeup``, and starts the services' background work. The RTP range comes
from ``FRONTDESK_RTP_PORTS`` (``LOW-HIGH``, default 30000-31999; ``0`` lets the OS pick).
This module decides nothing about calls; it only connects parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from frontdesk.media.clock import MediaClock
from frontdesk.media.rtp import PortRange
from frontdesk.pbx.echo import EchoService
from frontdesk.pbx.endpoint import MediaEndpoint
from frontdesk.pbx.ivr import start_menus
from frontdesk.pbx.voicemail import start_voicemail

log = logging.getLogger("frontdesk.media")

RTP_PORTS_ENV = "FRONTDESK_RTP_PORTS"
MEDIA_TIMEOUT_ENV = "FRONTDESK_MEDIA_TIMEOUT"  # seconds without RTP before hanging up
DEFAULT_RTP_PORTS = (30000, 31999)


class MediaConfigError(ValueError):
    """A media setting is wrong; the message names the setting and a valid example."""


def rtp_ports(value: str | None) -> tuple[int, int]:
    """Parse ``LOW-HIGH`` (or ``0`` for OS-assigned ports)."""
    if not value:
        return DEFAULT_RTP_PORTS
    if value.strip() == "0":
        return (0, 0)
    low, sep, high = value.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise MediaConfigError(f"{RTP_PORTS_ENV}={value!r} must be LOW-HIGH, e.g. 30000-31999")
    pair = (int(low), int(high))
    if not 1024 <= pair[0] < pair[1] <= 65535:
        raise MediaConfigError(
            f"{RTP_PORTS_ENV}={value!r}: need 1024 <= LOW < HIGH <= 65535, e.g. 30000-31999"
        )
    return pair


def media_timeout(value: str | None) -> float:
    """Seconds without RTP from a caller before the call is ended (default 20)."""
    if not value:
        return 20.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 2.0 <= seconds <= 3600.0:
        raise MediaConfigError(f"{MEDIA_TIMEOUT_ENV}={value!r} must be 2 to 3600 seconds")
    return seconds


def media_address(bind_host: str, advertised: str | None) -> str:
    """The address our SDP gives phones: the advertised host, the bound one, or (when bound
    to every interface) the address of the default route."""
    host = advertised or bind_host
    if host not in ("0.0.0.0", "::", ""):
        return host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
            found = str(probe.getsockname()[0])
        except OSError:
            found = "127.0.0.1"
    log.warning(
        "SIP listens on every interface: media will be announced as %s; use "
        "--advertise ADDRESS if phones cannot reach it",
        found,
    )
    return found


@dataclass
class MediaRuntime:
    endpoint: MediaEndpoint
    services: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for service in reversed(self.services):
            closer = getattr(service, "close", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        await self.endpoint.close()


async def start_media(server: Any) -> MediaRuntime:
    """Create the endpoint and services for ``server`` (a started `PbxServer`)."""
    cfg = server.config
    engine = server.engine
    low, high = rtp_ports(os.environ.get(RTP_PORTS_ENV))
    bind_host = cfg.sip_host or "0.0.0.0"
    host = media_address(bind_host, cfg.advertised_host)
    endpoint = MediaEndpoint(
        engine,
        media_host=host,
        ports=PortRange(bind_host, low, high),
        clock=MediaClock(),
        no_media_seconds=media_timeout(os.environ.get(MEDIA_TIMEOUT_ENV)),
    )
    endpoint.wakeup = server._flush
    endpoint.attach()
    runtime = MediaRuntime(endpoint)
    endpoint.services.append(EchoService())
    for starter in _service_starters():
        service = await starter(server, endpoint)
        if service is not None:
            runtime.services.append(service)
    _call_control(server, endpoint, runtime)
    log.info("media: RTP ports %s on %s, announced as %s", endpoint.ports, bind_host, host)
    return runtime


def _call_control(server: Any, endpoint: MediaEndpoint, runtime: MediaRuntime) -> None:
    """Prompts and menus inside call flows, and ``server.call_control`` (answer-time
    transfer / to-voicemail on live calls, pbx.callcontrol_live)."""
    from frontdesk.media.prompts import PromptLibrary
    from frontdesk.pbx.callcontrol_live import LiveCallControl

    control = LiveCallControl(server.engine, endpoint, server._flush)
    prompts = next(
        (
            s.prompts
            for s in runtime.services
            if isinstance(getattr(s, "prompts", None), PromptLibrary)
        ),
        None,
    )
    flows = server.engine.flows
    flows.media.prompts = prompts or PromptLibrary(server.config.data_dir)
    flows.media.control = control
    server.call_control = control


def _service_starters() -> list[Any]:
    """Services that answer calls (voicemail, menus), each started with (server, endpoint)."""
    return [start_voicemail, start_menus]
