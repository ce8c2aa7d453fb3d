"""A real local ``websockets`` server that speaks Bybit's v5 private stream, for tests (no internet, no mocks).

Protocol as Bybit's: ``{"op":"auth","args":[key, expires_ms, sig]}`` is checked (``sig`` = hex HMAC-SHA256 of
``GET/realtime{expires}`` with the secret, ``expires`` in the future), then ``{"op":"subscribe","args":[topics]}``;
both answered ``{"success":..,"ret_msg":..,"op":..,"conn_id":..}``. ``{"op":"ping"}`` gets
``{"op":"pong","args":[ms],...}``. Topic frames go only to authenticated, subscribed connections, in push order.

Faults: ``accepting = False`` refuses new connections (closes them at once), ``answer_pongs = False`` lets pings go
unanswered, :meth:`drop_all` closes every connection mid-stream, :meth:`push_raw` sends any text (malformed JSON).
``push`` is thread-safe (the account's REST side calls it from the HTTP server's threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


class PrivateWSServer:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.accepting = True
        self.answer_pongs = True
        self.connections = 0
        self.auth_ok = 0
        self.auth_failed = 0
        self.pings = 0
        self.subscribed: list[list[str]] = []
        self._clients: dict[ServerConnection, asyncio.Queue[str]] = {}
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn_ids = itertools.count(1)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}/v5/private"

    async def start(self) -> PrivateWSServer:
        self._loop = asyncio.get_running_loop()
        self._server = await serve(self._handler, "127.0.0.1", 0, ping_interval=None)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> PrivateWSServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ pushing
    def push(self, frame: dict[str, Any]) -> None:
        self.push_raw(json.dumps(frame))

    def push_raw(self, text: str) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._broadcast, text)

    def _broadcast(self, text: str) -> None:
        for q in self._clients.values():
            q.put_nowait(text)

    async def drop_all(self) -> None:
        """Close every connection (a disconnect mid-stream)."""
        await asyncio.gather(*(ws.close(1011, "server restart") for ws in list(self._clients)),
                             return_exceptions=True)

    @property
    def clients(self) -> int:
        return len(self._clients)

    # ------------------------------------------------------------------ protocol
    def _auth_ok(self, args: Any) -> bool:
        try:
            key, expires, sig = args
            expected = hmac.new(self.api_secret.encode(), f"GET/realtime{int(expires)}".encode(),
                                hashlib.sha256).hexdigest()
        except (TypeError, ValueError):
            return False
        return key == self.api_key and int(expires) > time.time() * 1000 and hmac.compare_digest(expected, sig)

    async def _handler(self, ws: ServerConnection) -> None:
        if not self.accepting:
            await ws.close(1013, "try again later")
            return
        self.connections += 1
        conn_id = f"conn-{next(self._conn_ids)}"
        authed = False
        out: asyncio.Queue[str] = asyncio.Queue()
        sender = asyncio.create_task(self._sender(ws, out))
        try:
            async for raw in ws:
                msg = json.loads(raw)
                op = msg.get("op")
                reply: dict[str, Any] = {"req_id": msg.get("req_id", ""), "op": op, "conn_id": conn_id}
                if op == "auth":
                    authed = self._auth_ok(msg.get("args"))
                    self.auth_ok += authed
                    self.auth_failed += not authed
                    reply.update(success=authed, ret_msg="" if authed else "Params Error")
                elif op == "subscribe":
                    reply.update(success=authed, ret_msg="" if authed else "Request not authorized")
                    if authed:
                        self.subscribed.append(list(msg.get("args") or []))
                        out.put_nowait(json.dumps(reply))
                        self._clients[ws] = out
                        continue
                elif op == "ping":
                    self.pings += 1
                    if not self.answer_pongs:
                        continue
                    reply.update(op="pong", args=[str(int(time.time() * 1000))])
                else:
                    reply.update(success=False, ret_msg=f"unknown op {op}")
                out.put_nowait(json.dumps(reply))
        except Exception:
            pass
        finally:
            self._clients.pop(ws, None)
            sender.cancel()

    @staticmethod
    async def _sender(ws: ServerConnection, out: asyncio.Queue[str]) -> None:
        while True:
            text = await out.get()
            try:
                await ws.send(text)
            except Exception:
                return
