"""A TCP proxy on 127.0.0.1 that spreads connections over upstreams and, when told to, misbehaves.

It stands where a reverse proxy or a flaky network would: each new connection goes to the next
upstream in turn (round-robin, the way a reverse proxy's upstream list does), or to the one after if
that one refuses. With ``faults`` set, a new connection may be refused at once, and each answer on
its way back may be held back or cut off (the store did the work, the client never hears of it and
must not make it happen twice). Runs its own asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """Per-connection probabilities (each checked in turn) and the delay range in seconds."""

    refuse: float = 0.03  # a new connection: close it at once
    cut_answer: float = 0.03  # an answer on its way back: close the connection instead (the work was done)
    delay: float = 0.10  # an answer on its way back: hold it first
    delay_seconds: tuple[float, float] = (0.2, 2.0)


class FaultProxy:
    """``with FaultProxy(upstream_ports) as proxy:`` -> ``proxy.url``; set ``proxy.faults`` to misbehave."""

    def __init__(self, upstream_ports: Sequence[int], *, seed: int = 1) -> None:
        self.upstreams = list(upstream_ports)
        self.faults: Faults | None = None
        self.counts: Counter[str] = Counter()  # what happened to connections: forwarded, refused, cut, delayed
        self._random = random.Random(seed)
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # connections still open: end them, so the loop stops clean
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024, limit=1 << 20)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.upstreams)):
            port = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # that store is down: the next one, as a reverse proxy would
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # the loop keeps only weak references to a connection's task
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        faults = self.faults
        if faults is not None and self._random.random() < faults.refuse:
            self.counts["refused"] += 1
            writer.transport.abort()
            return
        upstream = await self._connect_upstream()
        if upstream is None:
            self.counts["no_upstream"] += 1
            writer.transport.abort()
            return
        up_reader, up_writer = upstream
        self.counts["forwarded"] += 1
        to_server = asyncio.ensure_future(self._pump(reader, up_writer))
        to_client = asyncio.ensure_future(self._pump(up_reader, writer, answers=True))
        await asyncio.wait((to_server, to_client), return_when=asyncio.FIRST_COMPLETED)
        if to_client.done():
            to_server.cancel()
        await asyncio.gather(to_server, to_client, return_exceptions=True)
        for w in (writer, up_writer):
            w.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool = False) -> None:
        """Copy until EOF. On the way back (``answers``), each piece of an answer may be held back, or the
        connection cut right there: the request reached the store, the answer never reaches the client."""
        try:
            while True:
                data = await source.read(65536)
                if not data:
                    break
                faults = self.faults
                if answers and faults is not None:
                    roll = self._random.random()
                    if roll < faults.cut_answer:
                        self.counts["answers cut"] += 1
                        sink.transport.abort()
                        return
                    if roll < faults.cut_answer + faults.delay:
                        self.counts["answers delayed"] += 1
                        await asyncio.sleep(self._random.uniform(*faults.delay_seconds))
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        try:
            sink.write_eof()
        except (OSError, RuntimeError):
            pass
