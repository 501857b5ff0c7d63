"""The runtime's operator endpoints, always on 127.0.0.1: dead letters (``sluiceway dlq``) and status.

They live on their own port (``admin_port``) so that the webhook port can face the internet
while these never do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from sluiceway.app.dead_letters import message_letter, redis_dead_letters, send_letter
from sluiceway.http import Request, Response
from sluiceway.http.routes import Routes

if TYPE_CHECKING:
    from sluiceway.app.runtime import Runtime

#: The admin endpoints bind here whatever ``host`` the webhook uses.
ADMIN_HOST = "127.0.0.1"


async def _letters(runtime: Runtime) -> list[dict[str, Any]]:
    assert runtime.engine is not None and runtime.outbox is not None
    if runtime.broker is not None:  # every node's dead letters, both kinds, from Redis
        letters: list[dict[str, Any]] = await _in_redis(runtime, "list")
        return letters
    out = [message_letter(letter) for letter in runtime.engine.dead_letters()]
    return out + [send_letter(letter) for letter in await runtime.outbox.dead_letters()]


async def _in_redis(runtime: Runtime, action: str, kinds: tuple[str, ...] = ("message", "send")) -> Any:
    assert runtime.broker is not None
    return await redis_dead_letters(runtime.broker.url, runtime.broker.namespace, action, kinds)


_json = msgspec.json.Encoder()


def _json_response(value: object) -> Response:
    return Response(200, _json.encode(value), content_type="application/json")


def admin_routes(runtime: Runtime) -> Routes:
    """``GET /dead-letters``, ``POST /dead-letters/replay``, ``POST /dead-letters/purge``, ``GET /status``.

    Serve them with ``HttpServer(admin_routes(runtime).handle)``. Replay and purge act on both
    kinds (:mod:`sluiceway.app.dead_letters`): inbound messages whose handler failed run
    again, and failed sends (the provider refused them, e.g. outside the 24-hour window) are
    sent again.
    """

    async def list_letters(_: Request) -> Response:
        return _json_response(await _letters(runtime))

    async def replay(_: Request) -> Response:
        assert runtime.engine is not None and runtime.outbox is not None
        if runtime.broker is not None:
            messages = (await _in_redis(runtime, "replay", ("message",)))["replayed"]
        else:
            messages = len(runtime.engine.replay_dead_letters())
        # Sends (every node's, in Redis mode) go to this node's outbox and out now.
        return _json_response({"replayed": messages, "replayed_sends": await runtime.outbox.replay_dead_letters()})

    async def purge(_: Request) -> Response:
        assert runtime.engine is not None and runtime.outbox is not None
        messages = runtime.engine.purge_dead_letters()  # with Redis: this node's copies
        if runtime.broker is not None:
            messages = (await _in_redis(runtime, "purge", ("message",)))["purged"]
        return _json_response({"purged": messages, "purged_sends": await runtime.outbox.purge_dead_letters()})

    async def status(_: Request) -> Response:
        answer: dict[str, Any] = msgspec.to_builtins(runtime.status())
        cluster = await runtime.cluster_status()
        if cluster is not None:
            answer["redis"] = cluster
        return _json_response(answer)

    routes = Routes()
    routes.add("GET", "/dead-letters", list_letters)
    routes.add("POST", "/dead-letters/replay", replay)
    routes.add("POST", "/dead-letters/purge", purge)
    routes.add("GET", "/status", status)
    return routes
