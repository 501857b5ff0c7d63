"""Every message kind through the emulator as through the Cloud API: sends, template errors, read receipts, media."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp import (
    ErrorCategory,
    ListRow,
    ListSection,
    OutboundMessage,
    ReadReceipt,
    ReplyButton,
    SendError,
    WhatsAppCloudTransport,
)
from sluiceway.whatsapp.webhooks import DECODER, WebhookMessage

TENANT = "15550001111"

#: One message of each outbound kind, as a bot builds it, and what the conversation view shows of it.
EVERY_KIND: list[tuple[OutboundMessage, str, list[str]]] = [
    (OutboundMessage.of_text(TENANT, "see https://x.test", preview_url=True), "see https://x.test", []),
    (OutboundMessage.of_media(TENANT, "image", "https://x.test/a.png", caption="Your flat"), "Your flat", []),
    (OutboundMessage.of_media(TENANT, "audio", media_id="1000000000000001"), "[audio]", []),
    (OutboundMessage.of_media(TENANT, "video", "https://x.test/v.mp4"), "[video]", []),
    (
        OutboundMessage.of_media(TENANT, "document", "https://x.test/l.pdf", caption="Lease", filename="l.pdf"),
        "Lease",
        [],
    ),
    (OutboundMessage.of_media(TENANT, "sticker", media_id="1000000000000002"), "[sticker]", []),
    (
        OutboundMessage.of_location(TENANT, 51.5, -0.12, name="Flat 3", address="1 High St"),
        "📍 Flat 3, 1 High St (51.5, -0.12)",
        [],
    ),
    (
        OutboundMessage.of_buttons(TENANT, "Book a viewing?", [ReplyButton("y", "Yes"), ReplyButton("n", "No")]),
        "Book a viewing?",
        ["Yes", "No"],
    ),
    (
        OutboundMessage.of_list(
            TENANT, "Pick a slot", "Slots", [ListSection([ListRow("m9", "Mon 9:00"), ListRow("m10", "Mon 10:00")])]
        ),
        "Pick a slot",
        ["Mon 9:00", "Mon 10:00"],
    ),
    (OutboundMessage.of_reaction(TENANT, "wamid.THEIRS", "👍"), "👍", []),
    (OutboundMessage.of_reaction(TENANT, "wamid.THEIRS", ""), "(reaction removed)", []),
    (OutboundMessage.of_template(TENANT, "hello_world", "en_US"), "hello_world", []),
]


def _run(scenario: Callable[[WhatsAppEmulator, WhatsAppCloudTransport], Awaitable[None]], **emulator: Any) -> None:
    async def main() -> None:
        async with (
            WhatsAppEmulator(pair_limit=100, **emulator) as api,
            WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url) as transport,
        ):
            await scenario(api, transport)

    asyncio.run(main())


def test_every_outbound_kind_round_trips_through_the_transport() -> None:
    """Each kind is accepted as sent (the same message decoded back) and reads as a user would see it."""

    async def scenario(api: WhatsAppEmulator, transport: WhatsAppCloudTransport) -> None:
        for message, _, _ in EVERY_KIND:
            result = await transport.send(message)
            assert api.accepted[-1].wamid == result.message_id
            assert api.accepted[-1].message == message
        shown = [(m.type, m.text, m.buttons) for m in api.messages(to=TENANT)]
        assert shown == [(m.type, text, buttons) for m, text, buttons in EVERY_KIND]

    _run(scenario)


def test_a_malformed_body_is_a_400_with_code_100_naming_the_problem() -> None:
    """What the builders refuse, the emulator refuses too, as the API would (a permanent error)."""

    async def scenario(api: WhatsAppEmulator, _: WhatsAppCloudTransport) -> None:
        body = msgspec.to_builtins(OutboundMessage.of_buttons(TENANT, "Pick", [ReplyButton("a", "A")]))
        body["interactive"]["action"]["buttons"][0]["reply"]["title"] = "x" * 21
        async with HttpClient(api.base_url) as client:
            answer = await client.post(
                f"/v23.0/{api.phone_number_id}/messages",
                msgspec.json.encode(body),
                headers={"Authorization": f"Bearer {api.access_token}"},
            )
        error = msgspec.json.decode(answer.body)["error"]
        assert (answer.status, error["code"]) == (400, 100)
        assert "button title must be at most 20 characters, got 21" in error["error_data"]["details"]
        assert api.accepted == []

    _run(scenario)


def test_templates_must_be_registered_in_the_language_sent() -> None:
    """An unknown template name or language is error 132001 (permanent); registering it makes it sendable."""

    async def scenario(api: WhatsAppEmulator, transport: WhatsAppCloudTransport) -> None:
        for name, language in (("rent_due", "en_US"), ("hello_world", "es")):
            with pytest.raises(SendError) as refused:
                await transport.send(OutboundMessage.of_template(TENANT, name, language))
            assert (refused.value.code, refused.value.category) == (132001, ErrorCategory.PERMANENT)
            assert f"template name ({name}) does not exist in {language}" in (refused.value.details or "")
        api.register_template("rent_due", "en_US", "es")
        await transport.send(OutboundMessage.of_template(TENANT, "rent_due", "es", [{"type": "body"}]))
        assert [a.message.type for a in api.accepted] == ["template"]

    _run(scenario)


def test_a_read_receipt_with_typing_is_answered_success() -> None:
    async def scenario(api: WhatsAppEmulator, transport: WhatsAppCloudTransport) -> None:
        await transport.mark_read(ReadReceipt.of("wamid.THEIRS", typing=True))
        assert api.read_receipts == [ReadReceipt.of("wamid.THEIRS", typing=True)]
        async with HttpClient(api.base_url) as client:
            answer = await client.post(
                f"/v23.0/{api.phone_number_id}/messages",
                b'{"messaging_product": "whatsapp", "status": "read"}',
                headers={"Authorization": f"Bearer {api.access_token}"},
            )
        assert answer.status == 400 and msgspec.json.decode(answer.body)["error"]["code"] == 100
        assert api.accepted == []  # a receipt is no message

    _run(scenario)


def _form(fields: list[tuple[str, bytes, str | None, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body from (name, value, filename, content type) fields, as curl -F builds it."""
    boundary = "sluicewayBoundary7MA4YWxk"
    out = b""
    for name, value, filename, content_type in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        out += head.encode() + b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_media_uploads_then_downloads_with_the_token() -> None:
    """Upload returns an id; the id gives url, type, sha256 and size; the url with the token gives the bytes."""

    async def scenario(api: WhatsAppEmulator, transport: WhatsAppCloudTransport) -> None:
        data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
        body, content_type = _form(
            [
                ("messaging_product", b"whatsapp", None, None),
                ("file", data, "leak.jpg", "image/jpeg"),
                ("type", b"image/jpeg", None, None),
            ]
        )
        auth = {"Authorization": f"Bearer {api.access_token}"}
        async with HttpClient(api.base_url) as client:
            uploaded = await client.post(
                f"/v23.0/{api.phone_number_id}/media", body, content_type=content_type, headers=auth
            )
            assert uploaded.status == 200, uploaded.body
            media_id = msgspec.json.decode(uploaded.body)["id"]
            info_answer = await client.get(f"/v23.0/{media_id}", headers=auth)
            info = msgspec.json.decode(info_answer.body)
            assert (info["id"], info["mime_type"], info["file_size"]) == (media_id, "image/jpeg", len(data))
            assert info["sha256"] == hashlib.sha256(data).hexdigest()
            assert info["url"].startswith(api.base_url)
            path = info["url"].removeprefix(api.base_url)
            downloaded = await client.get(path, headers=auth)
            assert (downloaded.status, downloaded.body) == (200, data)
            assert (await client.get(path)).status == 401
            assert (await client.get("/v23.0/999", headers=auth)).status == 400
            no_file, _ = _form([("messaging_product", b"whatsapp", None, None)])
            refused = await client.post(
                f"/v23.0/{api.phone_number_id}/media", no_file, content_type=content_type, headers=auth
            )
            assert refused.status == 400 and b"`file`" in refused.body
        await transport.send(OutboundMessage.of_media(TENANT, "image", media_id=media_id, caption="the leak"))

    _run(scenario)


#: kind -> the content the emulator posts (Meta's webhook shapes) and what the business reads of it
INBOUND: dict[str, tuple[Any, str]] = {
    "image": ({"id": "MEDIA", "mime_type": "image/jpeg", "caption": "the leak"}, "the leak"),
    "audio": ({"id": "MEDIA", "mime_type": "audio/ogg", "voice": True}, "[audio]"),
    "document": ({"id": "MEDIA", "mime_type": "application/pdf", "filename": "lease.pdf"}, "[document]"),
    "location": ({"latitude": 51.5, "longitude": -0.12, "name": "Flat 3"}, "📍 Flat 3 (51.5, -0.12)"),
    "contacts": ([{"name": {"formatted_name": "Ann Lee"}, "phones": [{"phone": "+1 555"}]}], "contact: Ann Lee"),
    "button": ({"text": "Pay now", "payload": "PAY"}, "Pay now"),
    "interactive": ({"type": "list_reply", "list_reply": {"id": "m9", "title": "Mon 9:00"}}, "Mon 9:00"),
    "reaction": ({"message_id": "wamid.OURS", "emoji": "❤️"}, "❤️"),
    "unsupported": ({"type": "poll_creation"}, "[unsupported]"),
}


def test_inbound_messages_of_every_kind_reach_the_webhook_in_metas_shape() -> None:
    async def main() -> None:
        received: list[WebhookMessage] = []

        async def bot(request: Request) -> Response:
            received.extend(DECODER.decode(request.body).entry[0].changes[0].value.messages)
            return Response.text(200, "ok")

        server = HttpServer(bot)
        await server.start()
        try:
            async with WhatsAppEmulator(webhook_url=f"{server.url}/webhook") as api:
                media_id = api.add_media(b"\xff\xd8 jpeg bytes", "image/jpeg")
                for kind, (content, _) in INBOUND.items():
                    filled = msgspec.json.decode(msgspec.json.encode(content).replace(b"MEDIA", media_id.encode()))
                    _, status = await api.post_inbound(TENANT, kind=kind, content=filled, reply_to="wamid.OURS")
                    assert status == 200
                async with HttpClient(api.base_url) as client:
                    answer = await client.post(
                        "/_emulator/inbound",
                        b'{"from": "15550001111", "type": "location", "content": {"latitude": 1.5, "longitude": 2}}',
                    )
                    refused = await client.post(
                        "/_emulator/inbound", b'{"from": "15550001111", "type": "location", "content": {"lat": 1}}'
                    )
                assert answer.status == 200 and refused.status == 400
                with pytest.raises(ValueError, match="unknown inbound kind 'hologram'"):
                    await api.post_inbound(TENANT, kind="hologram", content={})
                with pytest.raises(ValueError, match="needs its content"):
                    await api.post_inbound(TENANT, kind="image")
                chat = api.messages(with_=TENANT)
                assert [(m.type, m.text) for m in chat] == [
                    *((kind, text) for kind, (_, text) in INBOUND.items()),
                    ("location", "📍 (1.5, 2.0)"),
                ]
        finally:
            await server.stop()
        assert [m.type for m in received] == [*INBOUND, "location"]
        assert all(m.reply_to == "wamid.OURS" for m in received[: len(INBOUND)])
        image, audio = received[0].image, received[1].audio
        assert image is not None and image.caption == "the leak" and audio is not None and audio.voice
        assert received[4].contacts is not None and received[4].contacts[0].name.formatted_name == "Ann Lee"

    asyncio.run(main())
