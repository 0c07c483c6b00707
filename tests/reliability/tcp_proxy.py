"""A loopback TCP forwarder that a test can cut and restore, to make a database unreachable.

The machine's PostgreSQL is shared, so tests never restart it: the server under test connects
through this proxy instead; `cut()` does to it what a restart does, `blackhole()` what a network
that drops every packet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.test_cli_e2e import free_port

_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` from a thread of its own."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._silent = False
        self.connections = 0

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones, as a stopped database would."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port, and forward."""
        self._silent = False
        self._call(self._listen())

    def blackhole(self) -> None:
        """Reset open connections, then accept new ones and never answer: a silent network."""
        self.cut()
        self._silent = True
        self._call(self._listen())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for stream in list(self._streams):
            stream.transport.abort()
        self._streams.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._silent:
            self._streams.add(writer)  # held open, unanswered, until the next cut
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._streams.update((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )
        self._streams.difference_update((writer, upstream_writer))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()
