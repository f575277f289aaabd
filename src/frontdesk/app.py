"""Wiring: one event loop running the SIP engine (and, when installed, the HTTP API).

`run()` starts everything, waits for SIGINT/SIGTERM and stops cleanly (flushing the journal).
It decides nothing about calls or configuration.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from frontdesk.pbx.server import PbxServer, ServerConfig

log = logging.getLogger("frontdesk")


async def run(data_dir: Path, db_url: str, sip_host: str, sip_port: int, http_host: str,
              http_port: int, advertise: str | None = None) -> None:
    server = PbxServer(ServerConfig(data_dir=data_dir, db_url=db_url, sip_host=sip_host,
                                    sip_port=sip_port, advertised_host=advertise))
    await server.start()
    http_task = None
    try:
        from frontdesk.api.http import serve_http
    except ImportError:
        serve_http = None  # type: ignore[assignment]
    if serve_http is not None:
        http_task = asyncio.get_running_loop().create_task(
            serve_http(server, http_host, http_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"Frontdesk is running: SIP udp+tcp {sip_host}:{server.transport.port if server.transport else sip_port}"
          f", data in {data_dir}. Ctrl-C to stop.", flush=True)
    await stop.wait()
    log.info("stopping")
    if http_task is not None:
        http_task.cancel()
    await server.stop()
