"""The benches' open-loop load generator (bench/webhook_load.py) against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio

import uvloop

from bench.webhook_load import NO_ANSWER, NOT_SENT, encode_posts, post_open_loop
from sluiceway.http import HttpServer, Request, Response


def test_posts_go_round_robin_and_each_answer_is_recorded() -> None:
    """Post i reaches server i % 2 with its body intact; every key gets its server's status."""

    async def scenario() -> None:
        seen: list[list[bytes]] = [[], []]

        def answering(index: int, status: int):  # type: ignore[no-untyped-def]
            async def handler(request: Request) -> Response:
                seen[index].append(request.body)
                return Response.text(status, "x" * index)  # bodies of different lengths

            return handler

        servers = [
            HttpServer(answering(0, 200), max_body_bytes=1 << 16),
            HttpServer(answering(1, 503), max_body_bytes=1 << 16),
        ]
        for server in servers:
            await server.start()
        try:
            urls = [server.url + "/webhook" for server in servers]
            posts = [(f"k{i}", f"body {i}".encode(), {"X-Test": str(i)}) for i in range(40)]
            start, end, posted, answers = await post_open_loop(
                urls, encode_posts(urls, posts), rate=2_000, connections=4
            )
        finally:
            for server in servers:
                await server.stop()
        assert seen[0] == [f"body {i}".encode() for i in range(0, 40, 2)]
        assert seen[1] == [f"body {i}".encode() for i in range(1, 40, 2)]
        assert {key: status for key, (status, _) in answers.items()} == {
            f"k{i}": 200 if i % 2 == 0 else 503 for i in range(40)
        }
        assert set(posted) == set(answers) and end >= start
        assert all(waited >= 0 for _, waited in answers.values())

    uvloop.run(scenario())


def test_a_post_that_cannot_be_written_in_time_is_given_up_unsent() -> None:
    """With one connection held by a slow answer, later posts are abandoned unsent (-1) after ``give_up``,
    and the held one that never gets an answer is 0."""

    async def scenario() -> None:
        never = asyncio.Event()

        async def hang(request: Request) -> Response:
            await never.wait()
            return Response.text(200, "late")

        server = HttpServer(hang, max_body_bytes=1 << 16)
        await server.start()
        try:
            url = server.url + "/webhook"
            posts = [(f"k{i}", b"{}", {}) for i in range(5)]
            _, _, _, answers = await post_open_loop(
                url, encode_posts(url, posts), rate=1_000, connections=1, give_up=0.2
            )
        finally:
            never.set()
            await server.stop()
        assert answers["k0"][0] == NO_ANSWER
        assert {answers[f"k{i}"][0] for i in range(1, 5)} == {NOT_SENT}

    uvloop.run(scenario())
