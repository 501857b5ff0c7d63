"""``sluiceway run`` as a real process (SIGTERM drain, ``dlq`` against it) and ``sluiceway demo`` sizes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from sluiceway.demo.run import DemoOptions, run_demo
from sluiceway.examples.property_bot import SHEETS
from sluiceway.testing import SheetsEmulator, WhatsAppEmulator
from sluiceway.testing.webhooks import signed, text_message

WAIT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until_answers(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(WAIT / 0.1)):
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_sigterm_drains_and_logs_one_summary_line(tmp_path: Path) -> None:
    """`sluiceway run` answers webhooks, `sluiceway dlq list` reaches it, and SIGTERM drains and logs a summary."""

    async def scenario() -> None:
        secret = "e2e-secret"
        async with (
            SheetsEmulator() as sheets,
            WhatsAppEmulator(throughput=200.0, pair_limit=50, pair_window=1.0) as api,
        ):
            for name, path in SHEETS.items():
                sheets.load_csv("sheet", name, path)
            port, admin = _free_port(), _free_port()
            env = {
                **os.environ,
                "WHATSAPP_APP_SECRET": secret,
                "WHATSAPP_ACCESS_TOKEN": api.access_token,
                "WHATSAPP_PHONE_NUMBER_ID": api.phone_number_id,
                "SLUICEWAY_WHATSAPP_BASE_URL": api.base_url,
                "SLUICEWAY_SHEETS_API_ENDPOINT": sheets.url,
                "SLUICEWAY_SPREADSHEET_ID": "sheet",
                "SLUICEWAY_ADMIN_PORT": str(admin),
                "SLUICEWAY_MONITOR_PORT": "0",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluiceway.cli",
                "run",
                "sluiceway.examples.property_bot.app:bot",
                "--port",
                str(port),
                "--workers",
                "1",
                env=env,
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                await _until_answers(f"http://127.0.0.1:{admin}/status")
                async with aiohttp.ClientSession() as session:
                    for i in range(5):
                        body, headers = signed(text_message("15550007777", f"wamid.run.{i}", "rent for 4B"), secret)
                        async with session.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r:
                            assert r.status == 200
                dlq = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "sluiceway.cli",
                    "dlq",
                    "list",
                    "--admin-url",
                    f"http://127.0.0.1:{admin}",
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await asyncio.wait_for(dlq.communicate(), WAIT)
                assert dlq.returncode == 0 and b"0 dead letter(s)" in out
                process.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(process.communicate(), WAIT)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.returncode == 0, err.decode()
            summaries = [line for line in err.decode().splitlines() if "shutdown ◆" in line and "received" in line]
            assert len(summaries) == 1 and "5 received" in summaries[0] and "0 left queued" in summaries[0]
            assert len(api.accepted) == 5
            assert secret not in err.decode() and api.access_token not in err.decode()

    asyncio.run(scenario())


def test_stress_thousand_concurrent_conversations(tmp_path: Path) -> None:
    """1,000 concurrent conversations through the whole pipeline: every message answered once, in order."""
    result = asyncio.run(
        run_demo(DemoOptions(conversations=1000, messages=1, rate=400, live=False, report_dir=str(tmp_path)))
    )
    assert result.verdict.ok, result.verdict
    assert result.verdict.inbound == 1000
    assert (tmp_path / "demo-report.html").exists() and (tmp_path / "demo-report.json").exists()
