"""Failures an operator can see: a raising handler's log line and traceback, refused webhook signatures."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.app.ingress import SIGNATURE_LOG_INTERVAL, ThrottledWarning, WebhookIngress
from sluiceway.app.secret import Secret
from sluiceway.cli import main
from sluiceway.testing.webhooks import signed, text_message

from .conftest import Stack


def _engine_warnings(caplog: pytest.LogCaptureFixture, containing: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "sluiceway.engine" and record.levelno == logging.WARNING and containing in record.getMessage()
    ]


def test_a_raising_handler_logs_one_line_and_its_dead_letter_keeps_the_traceback(
    stack: type[Stack], tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first failure is one WARNING line with the exception's type and message (later attempts are quiet),
    and the traceback once per distinct error; ``dlq list`` shows the exception line and ``--verbose`` the
    handler's traceback, from the running bot's admin API and from the stopped bot's journal."""
    caplog.set_level(logging.WARNING, logger="sluiceway.engine")
    (tmp_path / "none.toml").write_text("")
    offline = ["--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / "none.toml")]

    async def scenario() -> None:
        async with stack(
            bot="sample_bots:failing_bot", max_attempts=3, retry_initial_backoff=0.01, state_dir=tmp_path / "state"
        ) as s:
            assert s.runtime is not None and s.runtime.engine is not None
            engine = s.runtime.engine
            assert await s.say("15550006666", "wamid.boom", "boom") == 200
            await s.until(lambda: len(engine.dead_letters()) == 1)
            assert engine.dead_letters()[0].attempts == 3
            lines = _engine_warnings(caplog, "first attempt")
            assert len(lines) == 1, lines
            assert "RuntimeError: the handler failed on wamid.boom" in lines[0]
            # The same bug again, from another tenant: its line, but not its traceback again.
            assert await s.say("15550007777", "wamid.boom2", "boom again") == 200
            await s.until(lambda: len(engine.dead_letters()) == 2)
            assert len(_engine_warnings(caplog, "first attempt")) == 2
            tracebacks = _engine_warnings(caplog, "Traceback (most recent call last)")
            assert len(tracebacks) == 1 and "in fail_on_boom" in tracebacks[0], tracebacks
            admin = ["--admin-url", s.runtime.admin_url]
            assert await asyncio.to_thread(main, ["dlq", "list", *admin]) == 0
            brief = capsys.readouterr().out
            assert await asyncio.to_thread(main, ["dlq", "list", "--verbose", *admin]) == 0
            verbose = capsys.readouterr().out
        for answer in (brief, verbose):
            assert "message wamid.boom from 15550006666: RuntimeError: the handler failed on wamid.boom" in answer
        assert "Traceback (most recent call last)" not in brief
        assert "Traceback (most recent call last)" in verbose and "in fail_on_boom" in verbose

    asyncio.run(scenario())
    assert main(["dlq", "list", "--verbose", *offline]) == 0
    stopped = capsys.readouterr().out
    assert "(the bot is stopped)" in stopped
    assert "RuntimeError: the handler failed on wamid.boom" in stopped
    assert "Traceback (most recent call last)" in stopped and "in fail_on_boom" in stopped


class _FakeSink:
    async def enqueue(self, payload: object, priority: object, ordering_key: str) -> bool:
        raise AssertionError("a refused webhook must not reach the engine")


def test_a_burst_of_bad_signatures_logs_one_line_per_interval_without_secret_or_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1,000 forged webhooks within one interval log one line; the next interval's line counts the held-back
    ones. No line holds the app secret or the body."""
    secret = "the-real-app-secret"
    now = [0.0]
    ingress = WebhookIngress(app_secret=Secret(secret), sink=_FakeSink(), clock=lambda: now[0])
    body, _ = signed(text_message("15550007777", "wamid.forged", "private tenant text"), "another-secret")
    caplog.set_level(logging.WARNING, logger="sluiceway.ingress")

    async def burst(count: int, signature: str | None) -> None:
        for _ in range(count):
            answer = await ingress.receive(body, signature)
            assert answer.status == (403 if signature else 401)
            now[0] += 0.001

    asyncio.run(burst(1000, "sha256=" + "0" * 64))
    assert len(caplog.records) == 1
    assert "403" in caplog.records[0].getMessage()
    now[0] += SIGNATURE_LOG_INTERVAL
    asyncio.run(burst(10, None))  # unsigned ones count in the same budget
    assert len(caplog.records) == 2
    assert "(999 more since the last such line)" in caplog.records[1].getMessage()
    assert ingress.stats.bad_signature == 1000 and ingress.stats.unsigned == 10
    text = caplog.text
    assert secret not in text and "private tenant text" not in text and "another-secret" not in text


@given(gaps=st.lists(st.floats(min_value=0.0, max_value=25.0), max_size=60))
def test_throttled_warning_matches_a_reference_model(gaps: list[float]) -> None:
    """A line goes out when ``interval`` has passed since the last one, and it counts the ones held back since."""
    now = [0.0]
    logger = logging.getLogger("sluiceway.ingress")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        throttled = ThrottledWarning(10.0, clock=lambda: now[0])
        expected: list[str] = []
        next_at, held = -math.inf, 0
        for gap in gaps:
            now[0] += gap
            throttled.warn("refused")
            if now[0] >= next_at:  # the reference: log, and say how many were held back
                expected.append("refused" + (f" ({held} more since the last such line)" if held else ""))
                next_at, held = now[0] + 10.0, 0
            else:
                held += 1
    finally:
        logger.removeHandler(handler)
    assert lines == expected
