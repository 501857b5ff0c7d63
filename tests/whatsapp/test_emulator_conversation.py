"""The WhatsApp emulator's development-loop side: its port, the conversation view and posting inbound messages."""

from __future__ import annotations

import asyncio
import socket

import msgspec

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp import OutboundMessage
from sluiceway.whatsapp.messages import Interactive, InteractiveText
from sluiceway.whatsapp.webhooks import DECODER, SIGNATURE_HEADER, sign

SECRET = "conversation-test-secret"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _send(api: WhatsAppEmulator, message: OutboundMessage) -> str:
    async with HttpClient(api.base_url) as client:
        answer = await client.post(
            f"/v21.0/{api.phone_number_id}/messages",
            msgspec.json.encode(message),
            headers={"Authorization": f"Bearer {api.access_token}"},
        )
    assert answer.status == 200, answer.body
    wamid: str = msgspec.json.decode(answer.body)["messages"][0]["id"]
    return wamid


async def _get_json(api: WhatsAppEmulator, path: str) -> tuple[int, dict[str, object]]:
    async with HttpClient(api.base_url) as client:
        answer = await client.get(path)
    return answer.status, msgspec.json.decode(answer.body)


def test_the_emulator_listens_on_the_port_it_is_given() -> None:
    async def scenario() -> None:
        port = _free_port()
        async with WhatsAppEmulator(port=port) as api:
            assert api.base_url == f"http://127.0.0.1:{port}"
            status, body = await _get_json(api, "/_emulator/stats")
            assert status == 200 and body == {"accepted": 0, "answers": {}}

    asyncio.run(scenario())


def test_messages_view_lists_what_the_bot_sent_with_filters() -> None:
    async def scenario() -> None:
        async with WhatsAppEmulator(pair_limit=10, wall_clock=lambda: 1_700_000_000.0) as api:
            first = await _send(api, OutboundMessage.of_text("15550001111", "Unit 3D is available"))
            buttons = OutboundMessage(
                to="15550002222",
                type="interactive",
                interactive=Interactive(
                    "button",
                    InteractiveText("Book a viewing?"),
                    {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
                ),
            )
            second = await _send(api, buttons)
            status, body = await _get_json(api, "/_emulator/messages")
            assert status == 200
            assert body["messages"] == [
                {
                    "direction": "outbound",
                    "wamid": first,
                    "from": api.phone_number_id,
                    "to": "15550001111",
                    "type": "text",
                    "text": "Unit 3D is available",
                    "time": 1_700_000_000.0,
                    "buttons": [],
                    "reply_to": None,
                },
                {
                    "direction": "outbound",
                    "wamid": second,
                    "from": api.phone_number_id,
                    "to": "15550002222",
                    "type": "interactive",
                    "text": "Book a viewing?",
                    "time": 1_700_000_000.0,
                    "buttons": ["Yes"],
                    "reply_to": None,
                },
            ]
            _, only = await _get_json(api, "/_emulator/messages?to=15550002222")
            assert [m["wamid"] for m in only["messages"]] == [second]  # type: ignore[index]
            status, refused = await _get_json(api, "/_emulator/messages?recipient=1")
            assert status == 400 and "recipient" in refused["error"]["message"]  # type: ignore[index]

    asyncio.run(scenario())


def test_an_inbound_message_reaches_the_webhook_signed_and_joins_the_conversation() -> None:
    async def scenario() -> None:
        received: list[Request] = []

        async def bot_webhook(request: Request) -> Response:
            received.append(request)
            return Response.text(200, "ok")

        server = HttpServer(bot_webhook)
        await server.start()
        try:
            async with WhatsAppEmulator(webhook_url=f"{server.url}/webhook", app_secret=SECRET) as api:
                async with HttpClient(api.base_url) as client:
                    answer = await client.post("/_emulator/inbound", b'{"from": "+15550001111", "text": "is 3D free?"}')
                    refused = await client.post("/_emulator/inbound", b'{"from": "nobody", "text": "hi"}')
                assert answer.status == 200, answer.body
                reply = msgspec.json.decode(answer.body)
                assert reply["webhook_status"] == 200
                assert refused.status == 400 and b"phone number" in refused.body
                [request] = received
                assert request.path == "/webhook"
                assert request.headers[SIGNATURE_HEADER.lower()] == sign(request.body, SECRET.encode())
                [message] = DECODER.decode(request.body).entry[0].changes[0].value.messages
                assert (message.from_, message.id) == ("15550001111", reply["wamid"])
                assert message.text is not None and message.text.body == "is 3D free?"
                # The bot answers; the chat with the tenant shows both sides, in order.
                answer_wamid = await _send(api, OutboundMessage.of_text("15550001111", "Yes, 3D is free"))
                await _send(api, OutboundMessage.of_text("15550009999", "someone else"))
                chat = api.messages(with_="15550001111")
                assert [(m.direction, m.wamid, m.text) for m in chat] == [
                    ("inbound", reply["wamid"], "is 3D free?"),
                    ("outbound", answer_wamid, "Yes, 3D is free"),
                ]
        finally:
            await server.stop()

    asyncio.run(scenario())
