"""Build and sign WhatsApp webhook bodies the way Meta does, for tests and the demo's tenants."""

from __future__ import annotations

from typing import Any

import msgspec

from sluiceway.whatsapp.webhooks import SIGNATURE_HEADER, WHATSAPP_OBJECT, sign

#: The business phone number the simulated webhooks are addressed to.
PHONE_NUMBER_ID = "106540352242922"


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": WHATSAPP_OBJECT,
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def text_messages(messages: list[tuple[str, str, str]], timestamp: int = 1_749_416_383) -> dict[str, Any]:
    """A messages webhook carrying ``(sender, wamid, text)`` text messages, in order."""
    senders = sorted({sender for sender, _, _ in messages})
    return _envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Tenant {s[-4:]}"}, "wa_id": s} for s in senders],
            "messages": [
                {"from": sender, "id": wamid, "timestamp": str(timestamp), "type": "text", "text": {"body": text}}
                for sender, wamid, text in messages
            ],
        }
    )


def text_message(sender: str, wamid: str, text: str) -> dict[str, Any]:
    """A messages webhook carrying one text message."""
    return text_messages([(sender, wamid, text)])


def kind_message(sender: str, wamid: str, kind: str, content: Any) -> dict[str, Any]:
    """A messages webhook carrying one message of ``kind`` (image, interactive...); ``content`` is its object."""
    payload = text_message(sender, wamid, "")
    [message] = payload["entry"][0]["changes"][0]["value"]["messages"]
    del message["text"]
    message.update({"type": kind, kind: content})
    return payload


def status_update(wamid: str, recipient: str, status: str, error_code: int | None = None) -> dict[str, Any]:
    """A statuses webhook: ``status`` (sent, delivered, read, failed) for a message the business sent."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": "1749416390", "recipient_id": recipient}
    if error_code is not None:
        item["errors"] = [{"code": error_code, "title": "error", "message": "error", "error_data": {"details": "x"}}]
    return _envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [item],
        }
    )


def signed(payload: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """The JSON body of ``payload`` and the headers Meta would send with it."""
    body = msgspec.json.encode(payload)
    return body, {SIGNATURE_HEADER: sign(body, app_secret.encode()), "Content-Type": "application/json"}
