"""The runtime's durable parts: state_dir, wamid de-dup across restarts, the reply outbox, dead letters offline."""

from __future__ import annotations

import asyncio
import stat
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.app.context import Outgoing
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.settings import load_settings
from sluiceway.cli import main
from sluiceway.journal import Journal
from sluiceway.whatsapp.messages import OutboundMessage

from .conftest import Stack

# --- state_dir -----------------------------------------------------------------------------


def test_state_dir_comes_from_flags_environment_and_file(tmp_path: Path) -> None:
    """state_dir defaults to ./sluiceway-state and follows the usual precedence; the journal lives inside it."""
    toml = tmp_path / "sluiceway.toml"
    toml.write_text('state_dir = "/from/file"\n')
    assert load_settings(environ={}, config_file=toml).state_dir == "/from/file"
    env = {"SLUICEWAY_STATE_DIR": "/from/env"}
    assert load_settings(environ=env, config_file=toml).state_dir == "/from/env"
    chosen = load_settings(flags={"state_dir": "/from/flag"}, environ=env, config_file=toml)
    assert chosen.journal_path == Path("/from/flag/journal.sqlite3")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_settings(environ={}, config_file=empty).state_dir == "./sluiceway-state"
    with pytest.raises(ValueError, match="state_dir"):
        load_settings(flags={"state_dir": ""}, environ={}, config_file=empty)


def test_config_check_shows_the_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sluiceway.toml"
    config.write_text("")
    assert main(["config", "check", "--config", str(config), "--state-dir", str(tmp_path / "st")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("state_dir"))
    assert str(tmp_path / "st") in line and "SLUICEWAY_STATE_DIR" in line


def test_runtime_creates_a_private_state_dir_and_a_restart_remembers_wamids(tmp_path: Path) -> None:
    """The state_dir is made with mode 0700; a wamid answered before a restart is a duplicate after it."""
    state = tmp_path / "deep" / "state"

    async def scenario() -> None:
        async with Stack(bot="sample_bots:echo_bot", state_dir=state) as s:
            assert await s.reply("15550001111", "wamid.once", "hello") == "echo: hello"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert (state / "journal.sqlite3").is_file()
        async with Stack(bot="sample_bots:echo_bot", state_dir=state) as s:
            assert s.runtime is not None and s.runtime.ingress is not None and s.runtime.sink is not None
            assert await s.say("15550001111", "wamid.once", "hello") == 200
            assert s.runtime.ingress.stats.duplicates == 1
            assert await s.reply("15550001111", "wamid.next", "again") == "echo: again"
            assert s.replies_to("wamid.once") == []
            assert s.runtime.sink.stats.accepted == 1

    asyncio.run(scenario())


def test_concurrent_deliveries_of_one_wamid_run_it_once(tmp_path: Path) -> None:
    """Twenty simultaneous deliveries of one message are all answered 200; the handler runs once."""

    async def scenario() -> None:
        async with Stack(bot="sample_bots:echo_bot", state_dir=tmp_path) as s:
            statuses = await asyncio.gather(*(s.say("15550002222", "wamid.same", "hi") for _ in range(20)))
            assert statuses == [200] * 20
            await s.until(lambda: bool(s.replies_to("wamid.same")))
            assert s.runtime is not None and s.runtime.sink is not None
            await s.runtime.sink.wait_idle(60)
            assert s.replies_to("wamid.same") == ["echo: hi"]
            assert s.runtime.ingress is not None and s.runtime.ingress.stats.duplicates == 19

    asyncio.run(scenario())


# --- the outbox ----------------------------------------------------------------------------


class FakeSender:
    """Takes replies like ``BatchSender.enqueue_nowait`` (one id per idempotency key)."""

    def __init__(self) -> None:
        self.taken: list[Outgoing] = []
        self.ids: dict[str, str] = {}

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        key = idempotency_key or str(len(self.taken))
        if key not in self.ids:
            self.ids[key] = f"m{len(self.ids)}"
            self.taken.append(Outgoing(message, priority, key))  # type: ignore[arg-type]
        return self.ids[key]


def _reply(n: int, to: str = "15550003333") -> Outgoing:
    return Outgoing(OutboundMessage.of_text(to, f"reply {n}"), "normal", f"key-{n}")


async def _until(condition: object, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _outbox(path: Path) -> tuple[Journal, DurableOutbox, FakeSender]:
    journal = Journal.open(path, sync="normal")
    outbox, sender = DurableOutbox(), FakeSender()
    outbox.attach(sender)
    await outbox.open(journal.aio)  # resolves once the unsent replies are with the sender
    return journal, outbox, sender


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["queued", "sending", "sent", "failed"]), min_size=1, max_size=12))
def test_after_a_restart_unsent_replies_go_out_once_and_uncertain_ones_are_counted(fates: list[str]) -> None:
    """Model: a reply the sender had only queued is sent after a restart; one on the wire is sent again and
    counted; one WhatsApp took, or one that failed (a sender dead letter), is not. Order is kept."""

    async def scenario(path: Path) -> None:
        journal, outbox, sender = await _outbox(path)
        for n in range(len(fates)):
            outbox.put(_reply(n), f"wamid.in.{n}")
        await outbox.wait_committed(30)
        assert [r.message.text.body for r in sender.taken if r.message.text] == [
            f"reply {n}" for n in range(len(fates))
        ]
        for n, fate in enumerate(fates):
            message_id = sender.ids[f"key-{n}"]
            if fate in ("sending", "sent"):
                await outbox.sending([message_id])
            if fate == "sent":
                outbox.sent([message_id], f"wamid.out.{n}")
            if fate == "failed":
                outbox.failed(message_id, 131047, "outside the 24-hour window", 1)
        await journal.aio.stats()  # committed in order: everything above is in the journal now
        journal.close()  # the process "dies": nothing more is recorded

        journal, outbox, sender = await _outbox(path)
        expected = [n for n, fate in enumerate(fates) if fate in ("queued", "sending")]
        assert [r.idempotency_key for r in sender.taken] == [f"key-{n}" for n in expected]
        assert outbox.uncertain_resends == fates.count("sending")
        assert len(await outbox.dead_letters()) == fates.count("failed")
        journal.close()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder) / "journal.sqlite3"))


def test_a_status_webhook_finishes_a_sent_reply_and_later_ones_cost_nothing(tmp_path: Path) -> None:
    """The first status of a sent reply clears its row; ``delivered`` and ``read`` after it touch no storage."""

    async def scenario() -> None:
        journal = Journal.open(tmp_path / "j.sqlite3", sync="normal")
        recorded: list[str] = []

        class CountingStore:  # the journal, counting the status operations that reach it
            def __getattr__(self, name: str) -> Any:
                return getattr(journal.aio, name)

            def outbox_status(self, wamid: str) -> asyncio.Future[bool]:
                recorded.append(wamid)
                return journal.aio.outbox_status(wamid)

        outbox = DurableOutbox()
        outbox.attach(FakeSender())
        await outbox.open(CountingStore())  # type: ignore[arg-type]
        outbox.put(_reply(1), "wamid.in")
        await outbox.wait_committed(30)
        await outbox.sending(["m0"])
        outbox.sent(["m0"], "wamid.out")
        for _ in ("sent", "delivered", "read"):
            outbox.status("wamid.out")
        stats = await journal.aio.stats()
        assert stats.outbox == 0 and stats.outbox_uncertain == 0
        assert recorded == ["wamid.out"]
        journal.close()

    asyncio.run(scenario())


# --- dead letters with the bot stopped --------------------------------------------------------


def _journal_with_letters(path: Path) -> None:
    with Journal.open(path, sync="normal") as journal:
        payload = msgspec.msgpack.encode({"id": "wamid.boom", "sender": "15550004444", "text": "boom"})
        journal.insert_payloads(1, [payload], priority=1, enqueued_at=0.0, ordering_key="15550004444")
        journal.dead_letter(1, "error", "RuntimeError: the handler failed")
        body = msgspec.msgpack.encode(_reply(7, "15550004444"))
        journal.outbox_fail(journal.outbox_add("15550004444", body, "wamid.in.7"), "error 131047", "window closed", 1)


def test_dlq_works_on_the_journal_of_a_stopped_bot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """list, replay and purge open the journal in state_dir when no bot holds it, and say so."""
    _journal_with_letters(tmp_path / "journal.sqlite3")
    flags = ["--state-dir", str(tmp_path), "--config", str(tmp_path / "none.toml")]
    (tmp_path / "none.toml").write_text("")
    assert main(["dlq", "list", *flags]) == 0
    out = capsys.readouterr().out
    assert "(the bot is stopped)" in out and "2 dead letter(s)" in out
    assert "message wamid.boom from 15550004444" in out and "send 1 to 15550004444: error 131047" in out
    assert main(["dlq", "replay", *flags]) == 0
    assert "replayed 1 message(s) and 1 reply(ies)" in capsys.readouterr().out
    with Journal.open(tmp_path / "journal.sqlite3") as journal:
        assert [m.ordering_key for m in journal.recover().messages] == ["15550004444"]
        assert [item.state for item in journal.outbox_unsent()] == ["pending"]
    _journal_with_letters(tmp_path / "again" / "journal.sqlite3")
    again = ["--state-dir", str(tmp_path / "again"), "--config", str(tmp_path / "none.toml")]
    assert main(["dlq", "purge", *again]) == 0
    assert "purged 1 message(s) and 1 reply(ies)" in capsys.readouterr().out
    assert main(["dlq", "list", *again]) == 0
    assert "0 dead letter(s)" in capsys.readouterr().out


def test_dlq_asks_the_running_bot_when_it_holds_the_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the journal locked (a bot runs), dlq goes to the admin API; none answering is an error saying so."""
    (tmp_path / "none.toml").write_text("admin_port = 1\n")
    with Journal.open(tmp_path / "journal.sqlite3"):
        assert main(["dlq", "list", "--state-dir", str(tmp_path), "--config", str(tmp_path / "none.toml")]) == 1
    assert "no running bot answers at http://127.0.0.1:1" in capsys.readouterr().err
