"""Several business numbers: each message is answered from the number it came to, each number has its own
token and rate limits, status webhooks reach the right sender, and ``/metrics`` labels sends by number."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from sluiceway.app.settings import load_settings

from .outbound_stack import NUMBER_A, NUMBER_B, GraphStack

NUMBERS = {NUMBER_A: "token-a", NUMBER_B: "token-b"}


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_reply_leaves_from_the_number_its_message_came_to() -> None:
    async def scenario() -> None:
        async with GraphStack("sample_bots:echo_bot", numbers=NUMBERS) as s:
            wamid_a, _ = await s.whatsapp.post_inbound("15550004001", "to a", phone_number_id=NUMBER_A)
            wamid_b, _ = await s.whatsapp.post_inbound("15550004001", "to b", phone_number_id=NUMBER_B)
            await s.until(lambda: bool(s.replies_to(wamid_a) and s.replies_to(wamid_b)))
            assert [a.phone_number_id for a in s.replies_to(wamid_a)] == [NUMBER_A]
            assert [a.phone_number_id for a in s.replies_to(wamid_b)] == [NUMBER_B]
            assert s.runtime is not None
            assert sorted(s.runtime.senders) == sorted(NUMBERS)

    run(scenario)


def test_each_number_has_its_own_rate_limit_and_status_webhooks() -> None:
    """The emulator allows 5 messages/s per number, and each sender keeps to 5/s: no 130429 while both
    numbers send at once (one shared limit would have let one number send 10/s, or halved both)."""

    async def scenario() -> None:
        async with GraphStack("sample_bots:echo_bot", numbers=NUMBERS, throughput=5.0, rate=5) as s:
            tenants = [f"155500050{i:02d}" for i in range(10)]
            for tenant in tenants:
                for number in NUMBERS:
                    await s.whatsapp.post_inbound(tenant, f"hello {number}", phone_number_id=number)
            await s.until(lambda: len(s.whatsapp.accepted) == 20)
            assert s.whatsapp.answers[130429] == 0
            assert s.runtime is not None
            senders = s.runtime.senders
            await s.until(lambda: all(sender.stats()["confirmed"] == 10 for sender in senders.values()))
            assert {number: sender.stats()["sent"] for number, sender in senders.items()} == dict.fromkeys(NUMBERS, 10)
            assert s.runtime.status().sent == 20

    run(scenario)


def test_metrics_label_sends_by_number() -> None:
    async def scenario() -> None:
        async with GraphStack("sample_bots:echo_bot", numbers=NUMBERS, monitor_process=True) as s:
            wamid, _ = await s.whatsapp.post_inbound("15550004002", "hi", phone_number_id=NUMBER_B)
            await s.until(lambda: bool(s.replies_to(wamid)))
            assert s.runtime is not None and s.runtime.monitor is not None
            await s.until(
                lambda: s.runtime is not None and s.runtime.monitor is not None and s.runtime.monitor.http_url
            )
            url = f"{s.runtime.monitor.http_url}/metrics"
            expected = [
                f'sluiceway_custom_whatsapp_number_sent{{phone_number_id="{NUMBER_B}"}} 1.0',
                f'sluiceway_custom_whatsapp_number_sent{{phone_number_id="{NUMBER_A}"}} 0.0',
            ]
            page = ""
            async with aiohttp.ClientSession() as http:

                async def scrape() -> None:
                    nonlocal page
                    async with http.get(url) as response:
                        page = await response.text()

                deadline = asyncio.get_running_loop().time() + 30
                while not all(line in page for line in expected):
                    assert asyncio.get_running_loop().time() < deadline, page
                    await scrape()
                    await asyncio.sleep(0.1)

    run(scenario)


def test_settings_take_several_numbers_each_with_an_optional_token() -> None:
    settings = load_settings(
        environ={
            "WHATSAPP_PHONE_NUMBER_ID": "111",
            "SLUICEWAY_WHATSAPP_PHONE_NUMBER_IDS": "222, 333",
            "WHATSAPP_ACCESS_TOKEN": "shared",
            "WHATSAPP_ACCESS_TOKEN_333": "own",
        },
        config_file=None,
    )
    assert settings.phone_numbers == ("111", "222", "333")
    assert {n: t.reveal() for n, t in settings.whatsapp_number_tokens.items()} == {"333": "own"}
    assert "own" not in str(settings.redacted()) and b"own" not in settings.worker_json()


def test_a_message_to_a_number_the_bot_does_not_serve_gets_a_dead_letter_not_a_reply_from_another() -> None:
    async def scenario() -> None:
        async with GraphStack("sample_bots:echo_bot", numbers=NUMBERS) as s:
            stranger = "106540352242999"
            s.whatsapp.numbers[stranger] = "token-c"  # the emulator knows it; the bot's settings do not
            await s.whatsapp.post_inbound("15550004003", "hello", phone_number_id=stranger)
            assert s.runtime is not None and s.runtime.outbox is not None
            outbox = s.runtime.outbox
            await s.until(lambda: outbox.refused == 1)
            [letter] = await outbox.dead_letters()
            assert (letter.recipient, letter.reason) == ("15550004003", "unknown number")
            assert stranger in letter.error and "whatsapp_phone_number_ids" in letter.error
            assert s.whatsapp.accepted == [] and s.runtime.status().dead_lettered == 1

    run(scenario)
