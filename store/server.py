"""Running the store app under uvicorn: in the foreground (``consentry store serve``) or in a thread."""

from __future__ import annotations

import gc
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from fastapi import FastAPI

# uvicorn is imported inside the functions: importing it pulls in click, which vault must not import.


def freeze_startup_objects() -> None:
    """Exempt everything alive at start-up (modules, the app, keys, pools) from cyclic GC scans.

    Each upload allocates tens of thousands of short-lived objects, and every collection they
    trigger would rescan ~85,000 start-up objects: freezing them makes ingest about 20 % faster
    (``benchmarks/bench_store_ingest.py``). Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def serve(
    app: FastAPI,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve until interrupted; uvicorn drains in-flight requests on SIGTERM/SIGINT.

    With ``tls_cert``/``tls_key`` (PEM files) it serves HTTPS itself; behind a TLS-terminating reverse
    proxy it serves plain HTTP on a loopback address (docs/store.md). The soft open-files limit is
    raised to the hard one first: the connection cap (``store.connections``) fits under it.
    """
    import uvicorn

    from store.connections import raise_open_files_limit

    raise_open_files_limit()
    freeze_startup_objects()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        **connection_options(app),  # type: ignore[arg-type]
    )


def connection_options(app: FastAPI) -> dict[str, object]:
    """uvicorn options for the store's connection rules (``store.connections``), from the app's settings."""
    from store.connections import guarded_protocol

    return {"http": guarded_protocol(app.state.settings), "timeout_graceful_shutdown": 10}


class ThreadedServer:
    """A real uvicorn server on a background thread (tests, ``consentry demo``); port 0 picks a free one."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", access_log=False, **connection_options(app))  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the store server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
