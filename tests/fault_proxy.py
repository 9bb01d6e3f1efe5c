"""A small asyncio TCP proxy that breaks S3 traffic on purpose (toxiproxy is not in Debian).

It runs in its own thread on 127.0.0.1 and forwards to a real S3 server. It reads
each HTTP request head (boto3 sends Content-Length bodies, one request at a time
per connection) so a fault can target requests by method and path:

    reset_request   forward the head and part of the body, then drop the connection
    lose_response   forward the whole request, then drop the response (a lost ACK:
                    the server did the work, the client never hears of it)
    cut_response    forward only the first `after` bytes of the response, then drop
    status          answer with `status` (e.g. 503 SlowDown) without asking the server
    corrupt_request flip one bit of the request body at offset `after` (a bad network card)
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultProxy"]

_ACTIONS = ("reset_request", "lose_response", "cut_response", "status", "corrupt_request")
_ERROR_CODES = {500: "InternalError", 503: "SlowDown"}


@dataclass
class Fault:
    action: str
    method: str = ""  # "" matches any
    path_contains: str = ""
    times: int = 1
    after: int = 0  # bytes forwarded before cutting (reset_request: of the body)
    status: int = 503
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        assert self.action in _ACTIONS, self.action

    def matches(self, method: str, path: str) -> bool:
        return (
            self.fired < self.times
            and (not self.method or self.method == method)
            and self.path_contains in path
        )


class _Dropped(Exception):
    """The proxy dropped the connection on purpose."""


class FaultProxy:
    """Forwards 127.0.0.1:<port> to `upstream`, injecting armed faults."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:  # connections a client kept alive
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.fired += 1
                    return fault
        return None

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        current: list[Fault | None] = [None]  # the fault of the request in flight
        tasks = [
            asyncio.ensure_future(self._requests(client_r, server_w, client_w, current)),
            asyncio.ensure_future(self._responses(server_r, client_w, current)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is stopping: end this connection quietly
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (client_w, server_w):
            writer.transport.abort()

    async def _requests(
        self,
        client_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
        client_w: asyncio.StreamWriter,
        current: list[Fault | None],
    ) -> None:
        while True:
            try:
                head = await client_r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            method, path, length = _parse_head(head)
            fault = self._take(method, path)
            current[0] = fault
            if fault is not None and fault.action == "status":
                client_w.write(_error_response(fault.status, path))
                await client_w.drain()
                return
            server_w.write(head)
            limit = fault.after if fault is not None and fault.action == "reset_request" else None
            flip = fault.after if fault is not None and fault.action == "corrupt_request" else None
            await _copy(client_r, server_w, length if limit is None else min(limit, length), flip)
            if limit is not None:
                return  # the rest of the body never arrives: drop the connection

    async def _responses(
        self, server_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, current: list[Fault | None]
    ) -> None:
        sent, counting = 0, None  # response bytes forwarded under the current fault
        while True:
            data = await server_r.read(65536)
            if not data:
                return
            fault = current[0]
            if fault is not counting:
                sent, counting = 0, fault
            while fault is not None and data.startswith(b"HTTP/1.1 100 "):
                head, _, data = data.partition(b"\r\n\r\n")  # interim answers pass
                client_w.write(head + b"\r\n\r\n")
            if not data:
                continue
            if fault is not None and fault.action == "lose_response":
                await _drain_quietly(server_r)  # let the server finish; the client hears nothing
                return
            if fault is not None and fault.action == "cut_response":
                client_w.write(data[: max(0, fault.after - sent)])
                sent += len(data)
                if sent >= fault.after:
                    await client_w.drain()
                    return
                continue
            client_w.write(data)
            await client_w.drain()


async def _drain_quietly(reader: asyncio.StreamReader) -> None:
    try:
        while await asyncio.wait_for(reader.read(65536), 0.5):
            pass
    except asyncio.TimeoutError:
        pass


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int, flip: int | None = None
) -> None:
    """Forward `length` bytes; with `flip`, the bit 0 of the byte at that offset is inverted."""
    done = 0
    while done < length:
        data = await reader.read(min(length - done, 1 << 16))
        if not data:
            raise _Dropped("client closed mid-body")
        if flip is not None and done <= flip < done + len(data):
            data = bytearray(data)
            data[flip - done] ^= 1
        writer.write(data)
        await writer.drain()
        done += len(data)


def _parse_head(head: bytes) -> tuple[str, str, int]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "transfer-encoding":
            raise _Dropped("chunked request bodies are not supported by this proxy")
    return method, path, length


def _error_response(status: int, path: str) -> bytes:
    code = _ERROR_CODES.get(status, "InternalError")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected by the test proxy</Message><Resource>{path}</Resource></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body
