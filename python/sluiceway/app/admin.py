"""The runtime's operator endpoints, always on 127.0.0.1: dead letters (``sluiceway dlq``) and status.

They live on their own port (``admin_port``) so that the webhook port can face the internet
while these never do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway.http import Request, Response
from sluiceway.http.routes import Routes

if TYPE_CHECKING:
    from sluiceway.app.runtime import Runtime

#: The admin endpoints bind here whatever ``host`` the webhook uses.
ADMIN_HOST = "127.0.0.1"


def _letters(runtime: Runtime) -> list[dict[str, Any]]:
    assert runtime.sink is not None and runtime.sender is not None
    out: list[dict[str, Any]] = [
        {
            "kind": "message",
            "id": letter.message.id,
            "sender": letter.message.sender,
            "text": letter.message.text,
            "error": letter.error,
            "failed_at": letter.failed_at,
        }
        for letter in runtime.sink.dead_letters
    ]
    for letter in runtime.sender.dead_letters():
        out.append({"kind": "send", **msgspec.to_builtins(letter)})
    return out


_json = msgspec.json.Encoder()


def _json_response(value: object) -> Response:
    return Response(200, _json.encode(value), content_type="application/json")


def admin_routes(runtime: Runtime) -> Routes:
    """``GET /dead-letters``, ``POST /dead-letters/replay``, ``POST /dead-letters/purge``, ``GET /status``.

    Serve them with ``HttpServer(admin_routes(runtime).handle)``. Replay and purge act on
    inbound messages whose handler failed; failed sends (the provider refused them, e.g.
    outside the 24-hour window) are listed for inspection.
    """

    async def list_letters(_: Request) -> Response:
        return _json_response(_letters(runtime))

    async def replay(_: Request) -> Response:
        assert runtime.sink is not None and runtime.ingress is not None
        return _json_response({"replayed": await runtime.sink.replay_dead_letters(runtime.ingress.classify)})

    async def purge(_: Request) -> Response:
        assert runtime.sink is not None
        return _json_response({"purged": runtime.sink.purge_dead_letters()})

    async def status(_: Request) -> Response:
        return _json_response(runtime.status())

    routes = Routes()
    routes.add("GET", "/dead-letters", list_letters)
    routes.add("POST", "/dead-letters/replay", replay)
    routes.add("POST", "/dead-letters/purge", purge)
    routes.add("GET", "/status", status)
    return routes
