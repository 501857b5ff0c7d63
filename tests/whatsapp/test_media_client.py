"""``MediaClient`` against the emulator's media endpoints: round trips, limits, checks and failures."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from sluiceway.http import HttpClient
from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp.media import (
    MediaClient,
    MediaCorrupt,
    MediaExpired,
    MediaNotFound,
    MediaTooLarge,
    MediaTypeMismatch,
    MediaUnavailable,
    base_mime,
)

PHOTO = bytes(range(256)) * 40  # 10 KiB


async def no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


def run(test: Callable[[WhatsAppEmulator, MediaClient], Awaitable[None]], **client: Any) -> None:
    async def scenario() -> None:
        async with (
            WhatsAppEmulator() as api,
            MediaClient(api.access_token, base_url=api.base_url, sleep=no_wait, **client) as media,
        ):
            await test(api, media)

    asyncio.run(scenario())


def test_download_returns_the_bytes_by_inbound_object_dict_or_id() -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/jpeg")
        for reference in (media_id, {"id": media_id, "mime_type": "image/jpeg"}):
            got = await media.download(reference)
            assert (got.data, got.path, got.mime_type, got.size) == (PHOTO, None, "image/jpeg", len(PHOTO))
            assert got.sha256 == hashlib.sha256(PHOTO).hexdigest()

    run(test)


def test_a_download_over_the_spool_threshold_is_a_file(tmp_path: Any) -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        got = await media.download(api.add_media(PHOTO, "application/pdf"))
        assert got.data is None and got.path is not None and got.path.parent == tmp_path
        assert got.path.read_bytes() == PHOTO == got.read_bytes()

    run(test, spool_bytes=len(PHOTO) - 1, spool_dir=tmp_path)


@pytest.mark.parametrize("limit", [len(PHOTO) - 1, len(PHOTO)])
def test_the_size_limit_is_exact(limit: int) -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/jpeg")
        if limit < len(PHOTO):
            with pytest.raises(MediaTooLarge, match=f"over the limit of {limit}"):
                await media.download(media_id)
        else:
            assert (await media.download(media_id)).size == len(PHOTO)

    run(test, max_bytes=limit)


def test_a_mime_type_other_than_the_declared_one_is_refused() -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/png")
        with pytest.raises(MediaTypeMismatch, match="'image/png', but the message declared 'image/jpeg'"):
            await media.download({"id": media_id, "mime_type": "image/jpeg"})
        with pytest.raises(MediaTypeMismatch):
            await media.download(media_id, expected_mime_type="video/mp4")
        voice = api.add_media(b"OggS", "audio/ogg; codecs=opus")
        assert (await media.download({"id": voice, "mime_type": "audio/ogg"})).data == b"OggS"

    run(test)


def test_an_unknown_id_is_not_found() -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        with pytest.raises(MediaNotFound, match="media 404404 does not exist"):
            await media.download("404404")

    run(test)


def test_an_expired_url_is_fetched_again_once_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/jpeg")
        api.media_url_ttl = -1.0  # every url is already expired when it is used
        with caplog.at_level(logging.DEBUG), pytest.raises(MediaExpired) as error:
            await media.download(media_id)
        assert "expired" in str(error.value)
        # The url is signed: it appears in no error and no log line.
        assert "mid=" not in str(error.value) and "mid=" not in caplog.text and api.base_url not in str(error.value)
        api.media_url_ttl = 300.0
        assert (await media.download(media_id)).data == PHOTO

    run(test)


def test_transient_failures_and_timeouts_are_retried() -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/jpeg")
        api.fail_media_next(2, status=503, code=2)
        assert (await media.download(media_id)).data == PHOTO
        api.hang_media_next(1, seconds=1.0)
        assert (await media.download(media_id)).data == PHOTO
        api.fail_media_next(4, status=500)
        with pytest.raises(MediaUnavailable, match="HTTP 500, 4 tries"):
            await media.download(media_id)

    run(test, timeout=0.2, retries=3)


def test_upload_round_trip_and_limits(tmp_path: Any) -> None:
    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = await media.upload(PHOTO, "image/png", phone_number_id=api.phone_number_id)
        assert (await media.download({"id": media_id, "mime_type": "image/png"})).data == PHOTO
        path = tmp_path / "lease.pdf"
        path.write_bytes(b"%PDF-1.7 lease")
        document = await media.upload(path, "application/pdf", phone_number_id=api.phone_number_id)
        assert (await media.download(document)).data == b"%PDF-1.7 lease"
        assert api.media.get(document).mime_type == "application/pdf"
        with pytest.raises(ValueError, match="must be at most 16777216 bytes"):
            await media.upload(b"x" * (16 * 1024 * 1024 + 1), "audio/ogg", phone_number_id=api.phone_number_id)
        with pytest.raises(ValueError, match="must be at most 5242880 bytes"):
            await media.upload(b"x" * (5 * 1024 * 1024 + 1), "image/jpeg", phone_number_id=api.phone_number_id)
        with pytest.raises(ValueError, match="empty"):
            await media.upload(b"", "image/jpeg", phone_number_id=api.phone_number_id)
        with pytest.raises(ValueError, match="MIME type"):
            await media.upload(b"x", "jpeg", phone_number_id=api.phone_number_id)

    run(test)


def test_the_token_is_in_no_repr() -> None:
    client = MediaClient("secret-token-123")
    assert "secret-token-123" not in repr(client)
    assert base_mime("Audio/OGG; codecs=opus") == "audio/ogg"


def test_a_file_larger_than_reported_is_cut_off_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should Graph understate a file's size, the download itself stops at the limit."""

    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        media_id = api.add_media(PHOTO, "image/jpeg")
        real = api.media.describe

        def understated(media_id: str, origin: str, expires: float = float("inf")) -> Any:
            response = real(media_id, origin, expires)
            response.body = response.body.replace(f'"file_size":{len(PHOTO)}'.encode(), b'"file_size":1')
            return response

        monkeypatch.setattr(api.media, "describe", understated)
        with pytest.raises(MediaTooLarge, match=f"over the limit of {len(PHOTO) - 1} bytes"):
            await media.download(media_id)

    run(test, max_bytes=len(PHOTO) - 1)


def test_a_spooled_download_streams_to_its_file_and_is_checked(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the spool threshold the bytes go to the file as they arrive, never into one response body."""
    big = bytes(range(256)) * 8192  # 2 MiB: many socket reads

    async def test(api: WhatsAppEmulator, media: MediaClient) -> None:
        bodies: list[int] = []
        real_get = HttpClient.get

        async def spy(self: HttpClient, path: str, **kwargs: Any) -> Any:
            response = await real_get(self, path, **kwargs)
            bodies.append(len(response.body))
            return response

        monkeypatch.setattr(HttpClient, "get", spy)
        got = await media.download(api.add_media(big, "video/mp4"))
        assert got.path is not None and got.path.read_bytes() == big and got.size == len(big)
        assert got.sha256 == hashlib.sha256(big).hexdigest()
        assert bodies[-1] == 0  # the download's body went to the file, not into memory

        # Bytes that do not match the reported hash are refused and their spool file removed.
        corrupt = api.add_media(big, "video/mp4")
        stored = api.media.get(corrupt)
        api.media._by_id[corrupt] = msgspec.structs.replace(stored, data=big[:-1] + b"\x00")
        with pytest.raises(MediaCorrupt):
            await media.download(corrupt)
        # A transient failure starts the file afresh.
        again = api.add_media(big, "video/mp4")
        api.fail_media_next(1, status=503, code=2)
        retried = await media.download(again)
        assert retried.read_bytes() == big and retried.size == len(big)
        # An expired url leaves no file behind either.
        api.media_url_ttl = -1.0
        with pytest.raises(MediaExpired):
            await media.download(again)
        assert sorted(tmp_path.iterdir()) == sorted([got.path, retried.path])

    run(test, spool_bytes=1024, spool_dir=tmp_path)
