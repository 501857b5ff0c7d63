"""Media in handlers, through the runtime: the worker downloads with the token the runtime gave it, and uploads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from .outbound_bots import UPLOADED
from .outbound_stack import GraphStack

PHOTO = bytes(range(256)) * 16


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def _text(stack: GraphStack, tenant: str) -> str:
    body = stack.sent_to(tenant)[0].message.text
    assert body is not None
    return str(body.body)


def test_a_handler_downloads_the_tenants_photo_in_memory_or_to_a_file() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:media_bot", media_spool_bytes=len(PHOTO)) as s:
            small = s.whatsapp.add_media(PHOTO, "image/jpeg")
            large = s.whatsapp.add_media(PHOTO + b"!", "video/mp4")
            await s.whatsapp.post_inbound("15550001001", kind="image", content={"id": small, "mime_type": "image/jpeg"})
            await s.whatsapp.post_inbound("15550001002", kind="video", content={"id": large, "mime_type": "video/mp4"})
            await s.until(lambda: bool(s.sent_to("15550001001") and s.sent_to("15550001002")))
            assert _text(s, "15550001001") == f"image/jpeg {len(PHOTO)} {hashlib.sha256(PHOTO).hexdigest()} memory"
            digest = hashlib.sha256(PHOTO + b"!").hexdigest()
            assert _text(s, "15550001002") == f"video/mp4 {len(PHOTO) + 1} {digest} file"

    run(scenario)


def test_media_over_the_limit_or_of_another_type_fails_clearly_in_the_handler() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:media_bot", media_max_bytes=len(PHOTO) - 1) as s:
            big = s.whatsapp.add_media(PHOTO, "image/jpeg")
            odd = s.whatsapp.add_media(b"GIF89a", "image/gif")
            await s.whatsapp.post_inbound("15550001003", kind="image", content={"id": big, "mime_type": "image/jpeg"})
            await s.whatsapp.post_inbound("15550001004", kind="image", content={"id": odd, "mime_type": "image/jpeg"})
            await s.until(lambda: bool(s.sent_to("15550001003") and s.sent_to("15550001004")))
            assert _text(s, "15550001003").startswith("failed: MediaTooLarge: ")
            assert f"over the limit of {len(PHOTO) - 1} (media_max_bytes)" in _text(s, "15550001003")
            assert _text(s, "15550001004") == (
                f"failed: MediaTypeMismatch: media {odd} is 'image/gif', but the message declared 'image/jpeg'"
            )

    run(scenario)


def test_an_uploaded_file_goes_out_by_its_media_id() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:media_bot") as s:
            await s.whatsapp.post_inbound("15550001005", "upload")
            await s.until(lambda: bool(s.sent_to("15550001005")))
            image = s.sent_to("15550001005")[0].message.image
            assert image is not None and image.id is not None and image.caption == "uploaded"
            stored = s.whatsapp.media.get(image.id)
            assert (stored.data, stored.mime_type) == (UPLOADED, "image/png")

    run(scenario)
