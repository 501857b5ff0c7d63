"""The webhook ingress over real HTTP: verification, signatures, limits, parsing, de-duplication, backpressure."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import uvicorn
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from sluiceway.app.inbound import InboundMessage
from sluiceway.app.ingress import WebhookIngress
from sluiceway.app.priority import KeywordClassifier, PriorityLevel
from sluiceway.app.secret import Secret
from sluiceway.http import HttpServer
from sluiceway.testing.webhooks import signed, status_update, text_message, text_messages
from sluiceway.whatsapp.webhooks import SIGNATURE_HEADER, Status, sign

SECRET = "app-secret-for-tests"
VERIFY = "verify-me"


class FakeEngine:
    """Records what the ingress enqueues; ``gate`` (when cleared) blocks enqueue like backpressure.

    Like ``EngineSink`` it answers False for an id it accepted before (the real de-duplication,
    in the journal, is tested in test_durable_runtime.py).
    """

    def __init__(self) -> None:
        self.accepted: list[tuple[InboundMessage, PriorityLevel, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def enqueue(self, payload: InboundMessage, priority: PriorityLevel, ordering_key: str) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        if any(m.id == payload.id for m, _, _ in self.accepted):
            return False
        await self.gate.wait()
        self.accepted.append((payload, priority, ordering_key))
        return True


class FakeSender:
    def __init__(self, fail: bool = False) -> None:
        self.statuses: list[Status] = []
        self.fail = fail

    def handle_status(self, status: Status) -> None:
        if self.fail:
            raise RuntimeError("sender bug")
        self.statuses.append(status)


class Client:
    def __init__(self, session: ClientSession, base: str, ingress: WebhookIngress) -> None:
        self.session, self.base, self.ingress = session, base, ingress

    async def post(self, payload: dict[str, Any], secret: str = SECRET) -> tuple[int, str]:
        body, headers = signed(payload, secret)
        return await self.post_raw(body, headers)

    async def post_raw(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.session.post(self.base + "/webhook", data=body, headers=headers) as response:
            return response.status, await response.text()

    async def get(self, params: dict[str, str]) -> tuple[int, str]:
        async with self.session.get(self.base + "/webhook", params=params) as response:
            return response.status, await response.text()


@asynccontextmanager
async def serve(engine: FakeEngine, sender: FakeSender | None = None, **options: Any) -> AsyncIterator[Client]:
    options.setdefault("app_secret", Secret(SECRET))
    options.setdefault("verify_token", Secret(VERIFY))
    options.setdefault("classify", KeywordClassifier(["emergency", "leak", "flood", "fire", "gas"]))
    ingress = WebhookIngress(sink=engine, status_sink=sender, **options)
    if FRONT_END == "aiohttp":
        app = web.Application()
        ingress.add_routes(app)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        base, close = str(server.make_url("")).rstrip("/"), server.close
    elif FRONT_END == "asgi":
        base, close = await serve_asgi(Starlette(routes=[Route("/webhook", ingress.asgi(), methods=["GET", "POST"])]))
    else:
        lean = HttpServer(ingress.handle, max_body_bytes=ingress.max_body_bytes)
        await lean.start()
        base, close = lean.url, lean.stop
    try:
        async with ClientSession() as session:
            yield Client(session, base, ingress)
    finally:
        await close()


async def serve_asgi(app: Any) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1 and a free port: its base URL and how to stop it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # uvicorn gave up: show why
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    async def close() -> None:
        server.should_exit = True
        await task

    return f"http://127.0.0.1:{port}", close


#: The HTTP server the ingress runs on in the current test (every test runs on each).
FRONT_END = "httptools"


@pytest.fixture(autouse=True, params=["httptools", "aiohttp", "asgi"])
def front_end(request: pytest.FixtureRequest) -> None:
    """Run each test with the ingress on sluiceway.http.HttpServer, an aiohttp application and uvicorn + Starlette."""
    global FRONT_END
    FRONT_END = request.param


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


# --- GET verification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}, 200, "1158201444"),
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403, "verification failed"),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"}, 403, "verification failed"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 403, "verification failed"),
        ({}, 403, "verification failed"),
    ],
)
def test_verification_handshake(params: dict[str, str], status: int, text: str) -> None:
    """The challenge is echoed only for mode=subscribe with the right verify token; anything else is 403."""

    async def scenario() -> None:
        async with serve(FakeEngine()) as client:
            assert await client.get(params) == (status, text)

    run(scenario)


def test_verification_fails_without_a_configured_token() -> None:
    """With no verify token configured, no handshake can succeed."""

    async def scenario() -> None:
        async with serve(FakeEngine(), verify_token=None) as client:
            params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
            assert (await client.get(params))[0] == 403

    run(scenario)


# --- signatures, size, shape ---------------------------------------------------------------------


def test_missing_signature_is_401() -> None:
    """A POST without X-Hub-Signature-256 is refused with 401 and nothing is enqueued."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            body, headers = signed(text_message("15550001111", "wamid.1", "hi"), SECRET)
            del headers[SIGNATURE_HEADER]
            assert (await client.post_raw(body, headers))[0] == 401
        assert engine.accepted == []

    run(scenario)


@pytest.mark.parametrize("header", ["sha256=" + "0" * 64, "sha256=", "md5=abc", "garbage", "sha256=ZZ\u00e9"])
def test_wrong_signature_is_403(header: str) -> None:
    """A signature that is not the HMAC-SHA256 of the body with the app secret is refused with 403."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            body, headers = signed(text_message("15550001111", "wamid.1", "hi"), SECRET)
            headers[SIGNATURE_HEADER] = header
            assert (await client.post_raw(body, headers))[0] == 403
        assert engine.accepted == []

    run(scenario)


def test_signature_with_another_secret_or_body_is_403() -> None:
    """Signing with a different secret, or tampering with the body after signing, is refused."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            assert (await client.post(text_message("1555", "wamid.1", "hi"), secret="other"))[0] == 403
            body, headers = signed(text_message("1555", "wamid.1", "hi"), SECRET)
            assert (await client.post_raw(body.replace(b"hi", b"ho"), headers))[0] == 403
        assert engine.accepted == []

    run(scenario)


def test_oversized_body_is_413() -> None:
    """A body over max_body_bytes is refused with 413, whether announced by Content-Length or streamed."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine, max_body_bytes=1000) as client:
            body, headers = signed(text_message("1555", "wamid.1", "x" * 2000), SECRET)
            assert (await client.post_raw(body, headers))[0] == 413

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(body), 100):
                    yield body[start : start + 100]

            async with client.session.post(client.base + "/webhook", data=chunks(), headers=headers) as response:
                assert response.status == 413
            assert client.ingress.stats.too_large == 2
        assert engine.accepted == []

    run(scenario)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed webhook"),
        (b"[]", "Expected `object`"),
        (b'{"object": "whatsapp_business_account"}', "missing required field `entry`"),
        (b'{"object": "page", "entry": []}', "expected 'whatsapp_business_account'"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",'
            b' "value": {"messages": [{"from": "1", "id": "w", "type": "text"}]}}]}]}',
            "timestamp",
        ),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",'
            b' "value": {"statuses": [{"id": 5}]}}]}]}',
            "Expected `str`, got `int`",
        ),
    ],
)
def test_malformed_body_is_400_with_reason(body: bytes, reason: str) -> None:
    """Bodies that are not JSON or not a WhatsApp webhook are refused with 400 and the reason."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            headers = {SIGNATURE_HEADER: sign(body, SECRET.encode())}
            status, text = await client.post_raw(body, headers)
            assert status == 400
            assert reason in text
        assert engine.accepted == []

    run(scenario)


# --- acceptance, order, priority -----------------------------------------------------------------


def test_accepted_message_reaches_the_engine_with_sender_as_ordering_key() -> None:
    """A signed text message is enqueued once, normalised, keyed by its sender, and answered 200."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            status, text = await client.post(text_message("15550001111", "wamid.A", "Is 4B available?"))
            assert status == 200
            assert msgspec.json.decode(text) == {"accepted": 1, "duplicates": 0, "statuses": 0}
        [(message, priority, key)] = engine.accepted
        assert (message.id, message.sender, message.text, message.type) == (
            "wamid.A",
            "15550001111",
            "Is 4B available?",
            "text",
        )
        assert message.sender_name == "Tenant 1111" and message.phone_number_id and message.received_at > 0
        assert (priority, key) == ("normal", "15550001111")

    run(scenario)


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("EMERGENCY water everywhere", "high"),
        ("there's a leak under the sink", "high"),
        ("Flood in the basement!!", "high"),
        ("I smell gas", "high"),
        ("fire alarm going off", "high"),
        ("the gasket on the fridge is worn", "normal"),
        ("is the fireplace working?", "normal"),
        ("how much is rent for 4B", "normal"),
    ],
)
def test_priority_keywords(text: str, priority: str) -> None:
    """Messages with an emergency word (whole word, any case) are HIGH; others NORMAL."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            assert (await client.post(text_message("1555", "wamid.p", text)))[0] == 200
        assert engine.accepted[0][1] == priority

    run(scenario)


def test_messages_of_one_post_are_enqueued_in_order() -> None:
    """A webhook carrying several messages enqueues them in the order Meta sent them."""

    async def scenario() -> None:
        engine = FakeEngine()
        batch = [("1555", f"wamid.{i}", f"message {i}") for i in range(10)] + [("1666", "wamid.x", "other")]
        async with serve(engine) as client:
            assert (await client.post(text_messages(batch)))[0] == 200
        assert [m.id for m, _, _ in engine.accepted] == [w for _, w, _ in batch]
        assert engine.accepted[-1][0].sender_name == "Tenant 1666"

    run(scenario)


def test_non_text_messages_are_normalised() -> None:
    """Captions, button and list replies become text; type-specific data is kept."""
    value = text_message("1555", "wamid.t", "x")["entry"][0]["changes"][0]["value"]
    value["messages"] = [
        {
            "from": "1555",
            "id": "wamid.img",
            "timestamp": "1",
            "type": "image",
            "image": {"id": "media1", "mime_type": "image/jpeg", "caption": "the leak"},
        },
        {
            "from": "1555",
            "id": "wamid.btn",
            "timestamp": "2",
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "book", "title": "Book a viewing"}},
        },
        {
            "from": "1555",
            "id": "wamid.loc",
            "timestamp": "3",
            "type": "location",
            "location": {"latitude": 51.5, "longitude": -0.12},
            "context": {"from": "1999", "id": "wamid.prev"},
        },
        {
            "from": "1555",
            "id": "wamid.unk",
            "timestamp": "4",
            "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown"}],
        },
    ]
    payload = text_message("1555", "wamid.t", "x")
    payload["entry"][0]["changes"][0]["value"] = value

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            assert (await client.post(payload))[0] == 200
        image, button, location, unknown = (m for m, _, _ in engine.accepted)
        assert (image.text, image.data["id"], engine.accepted[0][1]) == ("the leak", "media1", "high")
        assert button.text == "Book a viewing"
        assert location.data == {"latitude": 51.5, "longitude": -0.12, "name": "", "address": ""}
        assert location.reply_to == "wamid.prev"
        assert (unknown.type, unknown.text, unknown.data) == ("unsupported", "", {})

    run(scenario)


# --- de-duplication ---------------------------------------------------------------------------


def test_a_redelivery_the_sink_recognises_is_answered_200_and_counted() -> None:
    """A wamid the sink says it accepted before is answered 200, counted as a duplicate, not accepted again."""

    async def scenario() -> None:
        engine = FakeEngine()
        async with serve(engine) as client:
            payload = text_message("1555", "wamid.dup", "hello")
            assert (await client.post(payload))[0] == 200
            status, text = await client.post(payload)
            assert (status, msgspec.json.decode(text)) == (200, {"accepted": 0, "duplicates": 1, "statuses": 0})
            assert len(engine.accepted) == 1
            assert (client.ingress.stats.accepted, client.ingress.stats.duplicates) == (1, 1)

    run(scenario)


# --- backpressure ------------------------------------------------------------------------------


def test_backpressure_answers_503_and_the_redelivery_is_accepted_once() -> None:
    """When the engine stays full past enqueue_timeout the answer is 503; Meta's retry is then accepted."""

    async def scenario() -> None:
        engine = FakeEngine()
        engine.gate.clear()
        async with serve(engine, enqueue_timeout=0.05) as client:
            payload = text_message("1555", "wamid.bp", "hello")
            status, _ = await client.post(payload)
            assert status == 503
            assert client.ingress.stats.backpressured == 1
            engine.gate.set()
            assert (await client.post(payload))[0] == 200
        assert [m.id for m, _, _ in engine.accepted] == ["wamid.bp"]

    run(scenario)


def test_partial_acceptance_then_redelivery_loses_and_duplicates_nothing() -> None:
    """If the engine fills mid-POST, the re-delivery skips what was accepted and enqueues the rest."""

    class FillsAfterOne(FakeEngine):
        async def enqueue(self, payload: InboundMessage, priority: PriorityLevel, ordering_key: str) -> bool:
            if any(m.id == payload.id for m, _, _ in self.accepted):
                return False
            if self.accepted:
                await self.gate.wait()
            self.accepted.append((payload, priority, ordering_key))
            return True

    async def scenario() -> None:
        engine = FillsAfterOne()
        engine.gate.clear()
        batch = [("1555", "wamid.1", "one"), ("1555", "wamid.2", "two"), ("1555", "wamid.3", "three")]
        async with serve(engine, enqueue_timeout=0.05) as client:
            assert (await client.post(text_messages(batch)))[0] == 503
            engine.gate.set()
            status, text = await client.post(text_messages(batch))
            assert status == 200
            assert msgspec.json.decode(text) == {"accepted": 2, "duplicates": 1, "statuses": 0}
        assert [m.id for m, _, _ in engine.accepted] == ["wamid.1", "wamid.2", "wamid.3"]

    run(scenario)


def test_engine_error_answers_503_and_is_retried() -> None:
    """An engine that raises (e.g. shutting down) makes the answer 503 and the message stays un-claimed."""

    async def scenario() -> None:
        engine = FakeEngine()
        engine.fail_with = RuntimeError("shutting down")
        async with serve(engine) as client:
            payload = text_message("1555", "wamid.e", "hello")
            assert (await client.post(payload))[0] == 503
            engine.fail_with = None
            assert (await client.post(payload))[0] == 200
        assert len(engine.accepted) == 1

    run(scenario)


# --- statuses ------------------------------------------------------------------------------------


def test_statuses_go_to_the_sender() -> None:
    """Status webhooks are parsed and handed to the sender's handle_status, errors included."""

    async def scenario() -> None:
        engine, sender = FakeEngine(), FakeSender()
        async with serve(engine, sender) as client:
            assert (await client.post(status_update("wamid.out1", "1555", "delivered")))[0] == 200
            assert (await client.post(status_update("wamid.out2", "1555", "failed", error_code=131026)))[0] == 200
        assert [(s.id, s.status) for s in sender.statuses] == [("wamid.out1", "delivered"), ("wamid.out2", "failed")]
        assert sender.statuses[1].errors[0].code == 131026
        assert engine.accepted == []

    run(scenario)


def test_failing_status_handler_is_counted_not_fatal() -> None:
    """A sender that raises on a status is logged and counted; the webhook still answers 200."""

    async def scenario() -> None:
        async with serve(FakeEngine(), FakeSender(fail=True)) as client:
            assert (await client.post(status_update("wamid.o", "1555", "read")))[0] == 200
            assert client.ingress.stats.status_errors == 1

    run(scenario)


def test_construction_errors_name_the_problem() -> None:
    """An ingress without an app secret, or with a bad limit, cannot be built."""
    with pytest.raises(ValueError, match="app_secret"):
        WebhookIngress(app_secret=Secret(""), sink=FakeEngine())
    with pytest.raises(ValueError, match="max_body_bytes"):
        WebhookIngress(app_secret=Secret("s"), sink=FakeEngine(), max_body_bytes=0)
    with pytest.raises(ValueError, match="enqueue_timeout"):
        WebhookIngress(app_secret=Secret("s"), sink=FakeEngine(), enqueue_timeout=-1)


def test_stop_accepting_refuses_messages_but_takes_statuses() -> None:
    """After stop_accepting, message webhooks get 503 while status webhooks still reach the sender."""

    async def scenario() -> None:
        engine, sender = FakeEngine(), FakeSender()
        async with serve(engine, sender) as client:
            client.ingress.stop_accepting()
            assert (await client.post(text_message("1555", "wamid.late", "hello")))[0] == 503
            assert (await client.post(status_update("wamid.out", "1555", "delivered")))[0] == 200
        assert engine.accepted == [] and [s.id for s in sender.statuses] == ["wamid.out"]

    run(scenario)


def test_shedding_refuses_messages_at_once_but_takes_statuses() -> None:
    """While overloaded() is true, message webhooks get 503 without waiting on the engine; statuses still pass."""

    async def scenario() -> None:
        engine, sender = FakeEngine(), FakeSender()
        overloaded = [True]
        async with serve(engine, sender, enqueue_timeout=30.0, overloaded=lambda: overloaded[0]) as client:
            refused = await client.post(text_message("1555", "wamid.shed", "hello"))
            assert (refused[0], client.ingress.stats.shed) == (503, 1)
            assert (await client.post(status_update("wamid.out", "1555", "delivered")))[0] == 200
            overloaded[0] = False
            assert (await client.post(text_message("1555", "wamid.shed", "hello")))[0] == 200  # Meta's re-delivery
        assert [m.id for m, _, _ in engine.accepted] == ["wamid.shed"]
        assert [s.id for s in sender.statuses] == ["wamid.out"]

    run(scenario)


# --- where the ASGI app answers -------------------------------------------------------------------


@pytest.mark.parametrize("front_end", ["asgi"], indirect=True)
@pytest.mark.parametrize(
    ("routes", "answered", "refused"),
    [
        # The documented form: exactly /webhook, no redirect for Meta to (not) follow.
        (
            lambda asgi: [Route("/webhook", asgi, methods=["GET", "POST"])],
            ["/webhook"],
            {"/webhook/": 307, "/webhook/x": 404},
        ),
        # A mount answers at its root; Starlette itself redirects /webhook to /webhook/ (307).
        (lambda asgi: [Mount("/webhook", app=asgi)], ["/webhook/"], {"/webhook": 307, "/webhook/other": 404}),
        (lambda asgi: [Mount("/hooks/wa", app=asgi)], ["/hooks/wa/"], {"/hooks/wa/x": 404}),
    ],
)
def test_asgi_app_answers_at_its_route_or_mount_root(
    front_end: None,
    routes: Callable[[Any], list[Any]],
    answered: list[str],
    refused: dict[str, int],
) -> None:
    """The ASGI app verifies and takes webhooks at the route or the mount's root, and nowhere else."""

    async def scenario() -> None:
        engine = FakeEngine()
        ingress = WebhookIngress(app_secret=Secret(SECRET), verify_token=Secret(VERIFY), sink=engine)
        base, close = await serve_asgi(Starlette(routes=routes(ingress.asgi())))
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        try:
            async with ClientSession() as session:
                for n, path in enumerate(answered):
                    async with session.get(base + path, params=params, allow_redirects=False) as response:
                        assert (response.status, await response.text()) == (200, "42")
                    body, headers = signed(text_message("1555", f"wamid.{n}", "hi"), SECRET)
                    async with session.post(base + path, data=body, headers=headers, allow_redirects=False) as response:
                        assert response.status == 200
                for path, status in refused.items():
                    body, headers = signed(text_message("1555", "wamid.refused", "hi"), SECRET)
                    async with session.post(base + path, data=body, headers=headers, allow_redirects=False) as response:
                        assert response.status == status
        finally:
            await close()
        assert [m.id for m, _, _ in engine.accepted] == [f"wamid.{n}" for n in range(len(answered))]

    run(scenario)


@pytest.mark.parametrize("front_end", ["asgi"], indirect=True)
def test_asgi_app_alone_answers_at_the_ingress_path(front_end: None) -> None:
    """Served directly by uvicorn (lifespan on), the ASGI app answers at ingress.path and 404s elsewhere."""

    async def scenario() -> None:
        ingress = WebhookIngress(app_secret=Secret(SECRET), sink=FakeEngine(), path="/hook")
        config = uvicorn.Config(ingress.asgi(), host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            async with ClientSession() as session:
                body, headers = signed(text_message("1555", "wamid.alone", "hi"), SECRET)
                async with session.post(base + "/hook", data=body, headers=headers) as response:
                    assert response.status == 200
                async with session.post(base + "/webhook", data=body, headers=headers) as response:
                    assert response.status == 404
                async with session.put(base + "/hook", data=body) as response:
                    assert (response.status, response.headers["Allow"]) == (405, "GET, POST")
        finally:
            server.should_exit = True
            await task

    run(scenario)


@pytest.mark.parametrize("front_end", ["aiohttp"], indirect=True)
def test_add_routes_without_aiohttp_names_the_extra(front_end: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without aiohttp installed, add_routes fails with an ImportError naming sluiceway[aiohttp]."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # what an uninstalled package looks like
    ingress = WebhookIngress(app_secret=Secret(SECRET), sink=FakeEngine())
    with pytest.raises(ImportError, match=r"sluiceway\[aiohttp\]"):
        ingress.add_routes(object())  # type: ignore[arg-type]
