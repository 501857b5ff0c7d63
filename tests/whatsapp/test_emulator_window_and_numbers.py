"""The emulator's 24-hour window (131047) and several business numbers, each with its token and limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from sluiceway.testing import WhatsAppEmulator
from sluiceway.whatsapp import ErrorCategory, OutboundMessage, SendError, WhatsAppCloudTransport

USER = "15550006001"
A, B = "106540352242922", "106540352242933"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_free_form_message_outside_the_window_is_131047_and_a_template_is_not() -> None:
    async def scenario() -> None:
        async with (
            WhatsAppEmulator(enforce_window=True, pair_limit=10) as api,
            WhatsAppCloudTransport(api.phone_number_id, api.access_token, base_url=api.base_url) as transport,
        ):
            with pytest.raises(SendError) as error:
                await transport.send(OutboundMessage.of_text(USER, "hello"))
            assert (error.value.code, error.value.category) == (131047, ErrorCategory.PERMANENT)
            await transport.send(OutboundMessage.of_template(USER, "hello_world", "en_US"))
            api.open_window(USER, at=time.time() - 24 * 3600 - 1)
            with pytest.raises(SendError, match="Re-engagement"):
                await transport.send(OutboundMessage.of_reaction(USER, "wamid.x", "👍"))
            api.open_window(USER)
            await transport.send(OutboundMessage.of_text(USER, "hello again"))
            assert [a.message.type for a in api.accepted] == ["template", "text"]

    run(scenario)


def test_each_number_has_its_own_token_throughput_and_statuses() -> None:
    async def scenario() -> None:
        async with WhatsAppEmulator(numbers={A: "ta", B: "tb"}, throughput=1.0) as api:
            a = WhatsAppCloudTransport(A, "ta", base_url=api.base_url)
            b = WhatsAppCloudTransport(B, "tb", base_url=api.base_url)
            wrong = WhatsAppCloudTransport(B, "ta", base_url=api.base_url)
            unknown = WhatsAppCloudTransport("999", "ta", base_url=api.base_url)
            try:
                await a.send(OutboundMessage.of_text(USER, "from a"))
                await b.send(OutboundMessage.of_text(USER, "from b"))  # B's bucket is its own
                with pytest.raises(SendError) as throttled:
                    await a.send(OutboundMessage.of_text("15550006002", "again from a"))
                assert throttled.value.code == 130429
                with pytest.raises(SendError) as refused:
                    await wrong.send(OutboundMessage.of_text(USER, "x"))
                assert refused.value.code == 190
                with pytest.raises(SendError) as missing:
                    await unknown.send(OutboundMessage.of_text(USER, "x"))
                assert missing.value.code == 100
            finally:
                for transport in (a, b, wrong, unknown):
                    await transport.aclose()
            assert [(x.phone_number_id, x.message.to) for x in api.accepted] == [(A, USER), (B, USER)]
            assert [m.from_ for m in api.messages(to=USER)] == [A, B]
            body = api.webhook_body([], B)
            assert body.entry[0].changes[0].value.metadata is not None
            assert body.entry[0].changes[0].value.metadata.phone_number_id == B

    run(scenario)
