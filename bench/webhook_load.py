"""Open-loop webhook load: Meta's side of the end-to-end benches, as cheap as a load generator can be.

On this 2-core machine the load generator shares the cores with the node it measures, so every
microsecond it spends is taken from the node: at 5,000 posts/s a generator built on a general
HTTP client took most of a core (formatting each request, a future and two timers per post, the
pool's wait) and the node's measured overload behaviour was mostly the generator's. Here every
request is encoded before the clock starts, and each connection is a bare protocol that writes the
next bytes and reads one status line and a ``Content-Length`` body.

Semantics match what Meta does and what the benches measured before: up to ``connections``
keep-alive connections, one request in flight on each (no pipelining); a post is due at
``start + i / rate`` whatever happened before (open loop); one that finds every connection busy
waits, first come first served, and its time counts from when it was due (no coordinated
omission). A post not written within ``give_up`` seconds of being due is abandoned unsent
(status ``-1``), and one written but not answered by then gets status ``0``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence

import yarl

#: The status of a post abandoned before it was written, and of one written and never answered.
NOT_SENT, NO_ANSWER = -1, 0
#: The shortest sleep between writing due posts, in seconds.
_TICK = 0.001


class _Post:
    __slots__ = ("due", "key", "request")

    def __init__(self, key: str, request: bytes, due: float) -> None:
        self.key, self.request, self.due = key, request, due


class _Poster(asyncio.Protocol):
    """One keep-alive connection: writes a request, reads its answer's status and length, repeats."""

    def __init__(self, load: _Load) -> None:
        self._load = load
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._post: _Post | None = None
        self._status = 0
        self._need = -1  # bytes of the answer still to read once its head is parsed; -1: head not parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._load.posters.append(self)
        self._load.idle(self)

    def write(self, post: _Post) -> None:
        assert self._transport is not None
        self._post = post
        self._transport.write(post.request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._post is not None:
            if self._need < 0:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
                self._status, self._need = _status_and_length(head)
            if len(self._buffer) < self._need:
                return
            self._buffer = self._buffer[self._need :]
            post, self._post, self._need = self._post, None, -1
            self._load.answered(post, self._status)
            self._load.idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.abandon()
        self._load.lost(self)

    def abandon(self) -> None:
        """The post in flight gets no answer (status 0)."""
        if self._post is not None:
            post, self._post = self._post, None
            self._load.answered(post, NO_ANSWER)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _status_and_length(head: bytes) -> tuple[int, int]:
    """The status and ``Content-Length`` of an answer's head (the node always sends a length)."""
    lines = head.split(b"\r\n")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(lines[0][9:12]), int(value)
    raise ValueError(f"an answer without Content-Length: {head[:200]!r}")


class _Load:
    def __init__(self, host: str, port: int, connections: int, give_up: float) -> None:
        self._host, self._port, self._connections, self._give_up = host, port, connections, give_up
        self._idle: list[_Poster] = []
        self.posters: list[_Poster] = []
        self.closing = False
        self._waiting: collections.deque[_Post] = collections.deque()
        self._reopening: set[asyncio.Future[None]] = set()
        self.outstanding = 0
        self.answers: dict[str, tuple[int, float]] = {}
        self.done = asyncio.get_running_loop().create_future()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._connections):
            await loop.create_connection(lambda: _Poster(self), self._host, self._port)

    def submit(self, post: _Post) -> None:
        if self.outstanding == 0 and self.done.done():  # every earlier post was answered: a new wait
            self.done = asyncio.get_running_loop().create_future()
        self.outstanding += 1
        if self._idle:
            self._idle.pop().write(post)
        else:
            self._waiting.append(post)

    def idle(self, poster: _Poster) -> None:
        now = time.monotonic()
        while self._waiting:
            post = self._waiting.popleft()
            if now - post.due <= self._give_up:
                poster.write(post)
                return
            self.answered(post, NOT_SENT, now)
        self._idle.append(poster)

    def answered(self, post: _Post, status: int, now: float | None = None) -> None:
        self.answers[post.key] = (status, (now or time.monotonic()) - post.due)
        self.outstanding -= 1
        if self.outstanding == 0 and not self.done.done():
            self.done.set_result(None)

    def lost(self, poster: _Poster) -> None:
        if poster in self._idle:
            self._idle.remove(poster)
        self.posters.remove(poster)
        if not self.closing:  # the node closed it (e.g. at its connection cap): open one in its place
            self._reopening.add(asyncio.ensure_future(self._reopen()))

    async def _reopen(self) -> None:
        while not self.closing:
            try:
                await asyncio.get_running_loop().create_connection(lambda: _Poster(self), self._host, self._port)
                return
            except OSError:
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.closing = True
        for task in self._reopening:
            task.cancel()
        for poster in list(self.posters):
            poster.abandon()
            poster.close()
        while self._waiting:
            self.answered(self._waiting.popleft(), NOT_SENT)
        await asyncio.sleep(0)  # let the transports run connection_lost


def encode_posts(
    urls: str | Sequence[str], posts: Sequence[tuple[str, bytes, dict[str, str]]]
) -> list[tuple[str, bytes]]:
    """Each (key, body, headers) as the whole HTTP/1.1 POST, ready to write; post ``i`` goes to
    ``urls[i % len(urls)]`` (the webhooks of nodes behind one load balancer take the posts in turn)."""
    heads = []
    for url in [urls] if isinstance(urls, str) else urls:
        target = yarl.URL(url)
        heads.append(f"POST {target.raw_path_qs} HTTP/1.1\r\nHost: {target.raw_authority}\r\n")
    encoded = []
    for i, (key, body, headers) in enumerate(posts):
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"{heads[i % len(heads)]}{lines}Content-Length: {len(body)}\r\n\r\n"
        encoded.append((key, head.encode("latin-1") + body))
    return encoded


async def post_open_loop(
    urls: str | Sequence[str],
    requests: Sequence[tuple[str, bytes]],
    rate: float,
    *,
    connections: int = 256,
    give_up: float = 10.0,
) -> tuple[float, float, dict[str, float], dict[str, tuple[int, float]]]:
    """Write ``requests`` (from :func:`encode_posts` with the same ``urls``) at ``rate`` per second, open loop.

    Each URL gets ``connections`` of its own. Returns (start, end of the offering, due time per key,
    (HTTP status, seconds from due to the answer) per key); see the module docstring for statuses
    ``-1`` and ``0``.
    """
    loads = []
    for url in [urls] if isinstance(urls, str) else urls:
        target = yarl.URL(url)
        assert target.host is not None and target.port is not None
        loads.append(_Load(target.host, target.port, connections, give_up))
        await loads[-1].open()
    posted: dict[str, float] = {}
    start = time.monotonic()
    sent = 0
    while sent < len(requests):
        now = time.monotonic()
        # Every post due by now goes out in this tick; the loop then sleeps until the next is due.
        due_count = min(len(requests), int((now - start) * rate) + 1)
        while sent < due_count:
            key, request = requests[sent]
            due = start + sent / rate
            posted[key] = due
            loads[sent % len(loads)].submit(_Post(key, request, due))
            sent += 1
        if sent < len(requests):
            # At least a millisecond per tick: one timer per post would cost more than the posts.
            await asyncio.sleep(max(_TICK, start + sent / rate - time.monotonic()))
    end = time.monotonic()
    # Written posts not answered within ``give_up`` of the last one's due time get status 0.
    unanswered = [load.done for load in loads if load.outstanding]
    if unanswered:
        await asyncio.wait(unanswered, timeout=give_up)
    answers: dict[str, tuple[int, float]] = {}
    for load in loads:
        await load.close()
        answers.update(load.answers)
    return start, end, posted, answers
