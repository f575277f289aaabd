"""Wiring: one event loop running the SIP engine (and, when installed, the HTTP API).

`run()` starts everything, waits for SIGINT/SIGTERM and stops cleanly (flushing the journal).
It decides nothing about calls or configuration.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from frontdesk.pbx.server import PbxServer, ServerConfig

log = logging.getLogger("frontdesk")


def bind_http(host: str, port: int) -> socket.socket:
    """Bind the HTTP API's socket now, so a taken port is a clear start-up error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen for HTTP on {host}:{port}: {e.strerror} "
                               "(choose another --http address)") from e
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def run(config: ServerConfig, http_host: str, http_port: int) -> None:
    from frontdesk.api.http import serve_http

    server = PbxServer(config)
    data_dir, sip_host, sip_port = config.data_dir, config.sip_host, config.sip_port
    http_sock = bind_http(http_host, http_port)
    try:
        await server.start()
    except BaseException:
        http_sock.close()
        raise
    http_task = asyncio.get_running_loop().create_task(serve_http(server, http_sock))
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
