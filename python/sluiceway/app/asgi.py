"""The webhook ingress as an ASGI 3 application, for programs that already run FastAPI or Starlette.

``WebhookIngress.asgi()`` builds one. It answers exactly as the native route does (the status
table in :mod:`sluiceway.app.ingress`), at the root of wherever the host framework puts it:

- ``Route("/webhook", ingress.asgi(), methods=["GET", "POST"])`` (in ``Starlette(routes=[...])``,
  or ``fastapi_app.router.routes.append(...)``) answers at ``/webhook`` itself. This is the form
  to use: Meta does not follow redirects, and Starlette's ``Mount`` matches only ``/webhook/...``,
  so with ``app.mount("/webhook", ...)`` a POST to ``/webhook`` gets a 307 to ``/webhook/``
  (``redirect_slashes``) that Meta never follows.
- ``app.mount("/webhook", ingress.asgi())`` answers at ``/webhook/`` (set that as the callback URL).
- served alone (``uvicorn module:app``) it answers at ``ingress.path``.

Starlette versions differ in what a mount leaves in ``scope["path"]`` (the remainder, or the
whole path with the prefix in ``root_path``), so the path relative to ``root_path`` is what is
matched: ``""``, ``"/"`` or ``ingress.path``; anything else is 404.

The native ``sluiceway.http.HttpServer`` (what ``sluiceway run`` uses) is the fast path: an
ASGI server and framework add their own per-request cost in front of the same checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sluiceway.http import Response

if TYPE_CHECKING:
    from sluiceway.app.ingress import WebhookIngress

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Paths (relative to ``root_path``) a mounted app answers at, besides ``ingress.path``.
_MOUNT_ROOTS = ("", "/")


class WebhookAsgiApp:
    """An ASGI 3 application serving one ``WebhookIngress`` (a class, so Starlette's ``Route`` calls it as ASGI)."""

    def __init__(self, ingress: WebhookIngress) -> None:
        self.ingress = ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        # Any other kind (websocket) is refused by returning without accepting it.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ingress = self.ingress
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        relative = path[len(root) :] if root and path.startswith(root) else path
        if relative not in _MOUNT_ROOTS and relative != ingress.path:
            await _respond(send, Response.text(404, f"no webhook at {path}"))
            return
        method: str = scope["method"]
        if method == "GET":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            await _respond(send, ingress.verify(query))
            return
        if method != "POST":
            await _respond(send, Response.text(405, f"{method} not allowed", headers={"Allow": "GET, POST"}))
            return
        signature: str | None = None
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-hub-signature-256":
                # Repeated headers are joined, as HttpServer does, so a second one cannot replace the first.
                text = value.decode("latin-1")
                signature = text if signature is None else f"{signature}, {text}"
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        body = await _read_body(receive, ingress.max_body_bytes, length)
        await _respond(send, await ingress.receive(body or b"", signature, body is None))


async def _read_body(receive: Receive, limit: int, length: int | None) -> bytes | None:
    """The request body, or ``None`` once it is known to exceed ``limit`` (the rest is not read)."""
    if length is not None and length > limit:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def _respond(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
    ]
    if response.headers:
        headers += [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()
        ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Served alone, the ingress has nothing to start or stop: acknowledge both."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
