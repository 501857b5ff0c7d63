"""The Redis-mode settings: where they come from, what is refused, and that a password never prints."""

from __future__ import annotations

import msgspec
import pytest
import redis

from sluiceway.app.settings import load_settings, worker_settings_from_json
from sluiceway.cli import main
from sluiceway.testing.redis_server import RedisServer

URL = "redis://app:hunter2@redis.internal:6379/0"


def test_redis_settings_come_from_flags_and_environment() -> None:
    settings = load_settings(
        flags={"redis_url": URL, "redis_unsafe": True},
        environ={"SLUICEWAY_REDIS_NAMESPACE": "bot2", "SLUICEWAY_REDIS_CLAIM_TIMEOUT": "5"},
        config_file=None,
    )
    assert settings.redis_url is not None and settings.redis_url.reveal() == URL
    assert (settings.redis_namespace, settings.redis_unsafe, settings.redis_claim_timeout) == ("bot2", True, 5.0)
    assert load_settings(environ={}).redis_url is None, "no Redis unless asked: the journal is the default"


def test_the_password_never_prints_but_workers_get_the_url() -> None:
    settings = load_settings(environ={"SLUICEWAY_REDIS_URL": URL})
    for shown in (repr(settings), str(settings.redacted()), str(settings.redis_url)):
        assert "hunter2" not in shown and "redis://app:****@redis.internal:6379/0" in shown
    restored = worker_settings_from_json(settings.worker_json())
    assert restored.redis_url is not None and restored.redis_url.reveal() == URL


def test_config_check_masks_the_password(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICEWAY_REDIS_URL", URL)
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "redis_url" in out and "hunter2" not in out


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SLUICEWAY_REDIS_URL": "http://redis:6379"}, "redis_url"),
        ({"SLUICEWAY_REDIS_NAMESPACE": "a:b"}, "redis_namespace"),
        ({"SLUICEWAY_REDIS_CLAIM_TIMEOUT": "0"}, "redis_claim_timeout"),
    ],
)
def test_bad_redis_settings_are_refused_naming_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        load_settings(environ=environ)


def test_dlq_lists_replays_and_purges_the_dead_letters_in_redis(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICEWAY_REDIS_URL", raising=False)
    client = redis.Redis.from_url(redis_server.url)
    inbound = msgspec.msgpack.encode({"id": "wamid.1", "sender": "15550100", "text": "broken"})
    for n in range(2):
        entry = msgspec.msgpack.encode((1, 0.0, "15550100", inbound))
        client.xadd("sluiceway:dead", {"m": entry, "partition": 3, "error": f"ValueError: bad {n}", "dead_at": "1.0"})
    assert main(["dlq", "list", "--redis", redis_server.url]) == 0
    listed = capsys.readouterr().out
    assert "message wamid.1 from 15550100: ValueError: bad 0" in listed and "2 dead letter(s)" in listed
    assert main(["dlq", "replay", "--redis", redis_server.url]) == 0
    assert "replayed 2 message(s)" in capsys.readouterr().out
    assert client.xlen("sluiceway:p:3") == 2 and client.xlen("sluiceway:dead") == 0
    client.xadd("sluiceway:dead", {"m": entry, "partition": 3, "error": "again", "dead_at": "2.0"})
    assert main(["dlq", "purge", "--redis", redis_server.url]) == 0
    assert "purged 1 message(s)" in capsys.readouterr().out
    assert client.xlen("sluiceway:dead") == 0
    client.close()
