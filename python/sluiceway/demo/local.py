"""A runtime wired to local emulators: what the demo, the end-to-end tests and the benchmark run."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from sluiceway.app.runtime import Runtime
from sluiceway.app.secret import Secret
from sluiceway.app.settings import Settings
from sluiceway.engine import ParallelizerConfig
from sluiceway.monitor import MonitorConfig
from sluiceway.whatsapp import RecipientLimit, SenderConfig, WhatsAppCloudTransport

#: The Sheets quota a local run uses: the Sheets emulator's own per-minute limits.
EMULATED_SHEETS_REQUESTS_PER_MINUTE = 300


def emulated_runtime(
    bot: str,
    *,
    app_secret: str,
    whatsapp_url: str,
    phone_number_id: str,
    access_token: str,
    sheets_url: str,
    spreadsheet_id: str,
    workers: int,
    rate: int,
    pair_limit: tuple[int, float],
    monitor_process: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    port: int = 0,
    **engine: Any,
) -> Runtime:
    """A ``Runtime`` for ``bot`` on 127.0.0.1 (free ports) against the WhatsApp and Sheets emulators.

    ``rate`` is the sender's messages/s (the emulator's cap), ``pair_limit`` its per-recipient
    ``(limit, window)``; ``engine`` overrides ``ParallelizerConfig`` fields. ``state_dir``
    holds the journal (a restart on the same one recovers); by default a new temporary
    directory, left behind for inspection. ``port`` is the webhook's (0: a free one); a
    restart that Meta's re-deliveries must reach keeps it.
    """
    if state_dir is None:
        state_dir = tempfile.mkdtemp(prefix="sluiceway-state-")
    settings = Settings(
        whatsapp_app_secret=Secret(app_secret),
        whatsapp_phone_number_id=phone_number_id,
        spreadsheet_id=spreadsheet_id,
        sheets_api_endpoint=sheets_url,
        sheets_read_requests_per_minute=EMULATED_SHEETS_REQUESTS_PER_MINUTE,
        sheets_write_requests_per_minute=EMULATED_SHEETS_REQUESTS_PER_MINUTE,
        port=port,
        admin_port=0,
        monitor_port=0,
        workers=workers,
        state_dir=os.fspath(state_dir),
    )
    engine = {"default_worker_count": workers, "min_workers": 1, "max_workers": max(2, workers)} | engine
    return Runtime(
        bot,
        settings,
        transport=WhatsAppCloudTransport(phone_number_id, access_token, base_url=whatsapp_url),
        engine_config=ParallelizerConfig(**engine),
        sender_config=SenderConfig.cloud_api(rate, per_recipient=RecipientLimit(*pair_limit)),
        monitor_config=MonitorConfig(
            http_port=0, metric_collection_interval=1.0, performance_check_interval=5.0, monitor_process=monitor_process
        ),
    )
