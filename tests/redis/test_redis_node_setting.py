"""``redis_node``: this node's name in Redis (its unsent replies are kept under it)."""

from __future__ import annotations

import socket

import pytest

from sluiceway.app.settings import load_settings
from sluiceway.cli import main


def test_the_node_name_comes_from_the_flag_or_environment_and_defaults_to_host_and_port() -> None:
    assert load_settings(flags={"redis_node": "node-1"}, environ={}, config_file=None).node_name == "node-1"
    assert load_settings(environ={"SLUICEWAY_REDIS_NODE": "eu-2:web"}, config_file=None).node_name == "eu-2:web"
    # Two nodes on one machine listen on different ports, so their default names differ.
    default = load_settings(environ={"SLUICEWAY_PORT": "8123"}, config_file=None)
    assert default.redis_node is None and default.node_name == f"{socket.gethostname()}:8123"


@pytest.mark.parametrize("bad", ["", "a b", "{dlq-replay}", "x" * 129, "nöde"])
def test_a_bad_node_name_is_one_line_and_exit_code_2(
    bad: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICEWAY_REDIS_NODE", raising=False)
    with pytest.raises(ValueError, match="redis_node"):
        load_settings(environ={"SLUICEWAY_REDIS_NODE": bad}, config_file=None)
    assert main(["run", "no_such_module:bot", "--redis", "redis://127.0.0.1:1/0", "--redis-node", bad]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "redis_node" in lines[0], lines
