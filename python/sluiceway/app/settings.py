"""The bot runtime's settings: one frozen Struct, loaded from flags, environment and a TOML file.

Precedence, highest first: command-line flags > environment > ``sluiceway.toml`` > defaults.
The environment names are the provider's usual ones for the five credentials
(``WHATSAPP_ACCESS_TOKEN``, ``WHATSAPP_APP_SECRET``, ``WHATSAPP_VERIFY_TOKEN``,
``WHATSAPP_PHONE_NUMBER_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``) and ``SLUICEWAY_<NAME>``
for everything else (``SLUICEWAY_PORT=9000``, ``SLUICEWAY_HIGH_PRIORITY_KEYWORDS=leak,fire``).
The TOML file uses the field names as top-level keys.

Secrets are held as :class:`~sluiceway.app.secret.Secret`, so printing the settings (or an
exception that includes them) never shows a token. They are accepted from the environment
and the TOML file, never from flags (command lines are visible to every local user in ``ps``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_type_hints

import msgspec
import tomllib

from sluiceway.app.secret import RedisUrl, Secret
from sluiceway.app.shedding import DEFAULT_MAX_DELAY
from sluiceway.http import server as http_server

#: The file ``load_settings`` reads when no path is given (relative to the working directory).
DEFAULT_CONFIG_FILE = "sluiceway.toml"

#: The journal's file name inside ``state_dir``.
JOURNAL_FILE = "journal.sqlite3"
#: What ``redis_node`` may be: it is part of Redis key names (printable, no spaces, no braces).
_NODE_NAME = re.compile(r"[!-z|~]{1,128}")

#: Environment variables that keep the provider's conventional names instead of ``SLUICEWAY_*``.
PROVIDER_ENV_NAMES: dict[str, str] = {
    "whatsapp_access_token": "WHATSAPP_ACCESS_TOKEN",
    "whatsapp_app_secret": "WHATSAPP_APP_SECRET",
    "whatsapp_verify_token": "WHATSAPP_VERIFY_TOKEN",
    "whatsapp_phone_number_id": "WHATSAPP_PHONE_NUMBER_ID",
    "google_application_credentials": "GOOGLE_APPLICATION_CREDENTIALS",
    # One variable per number (see ``number_token_env``); named here for messages and the README.
    "whatsapp_number_tokens": "WHATSAPP_ACCESS_TOKEN_<phone_number_id>",
}

#: Settings that hold secrets: masked when printed, refused as command-line flags.
SECRET_FIELDS = frozenset(
    {"whatsapp_access_token", "whatsapp_app_secret", "whatsapp_verify_token", "whatsapp_number_tokens"}
)
#: Settings read from the environment only, under names of their own (see ``number_token_env``).
_ENV_ONLY_FIELDS = frozenset({"whatsapp_number_tokens"})

#: The words that make a tenant's message HIGH priority by default (the property bot's list).
DEFAULT_HIGH_PRIORITY_KEYWORDS = (
    "emergency",
    "urgent",
    "leak",
    "leaking",
    "flood",
    "flooding",
    "fire",
    "smoke",
    "gas",
    "burst",
)


#: The webhook server's limits, passed to ``HttpServer`` under the same names.
SERVER_LIMITS = (
    "max_header_bytes",
    "max_headers",
    "max_url_bytes",
    "header_timeout",
    "body_timeout",
    "keepalive_timeout",
    "max_connections",
    "max_pipelined",
)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of ``sluiceway run`` and ``sluiceway demo``, validated on construction.

    Example::

        settings = load_settings(flags={"port": 9000})
        print(settings)           # secrets print as **********

    Warning: ``dedup_window`` bounds how long a re-delivered webhook is recognised (a week by
    default, which covers Meta's re-delivery period); a message re-delivered after the window
    is processed again. The wamids live in the journal in ``state_dir`` (about 100 bytes each).
    """

    # WhatsApp Cloud API
    whatsapp_access_token: Secret | None = None
    whatsapp_app_secret: Secret | None = None
    whatsapp_verify_token: Secret | None = None
    whatsapp_phone_number_id: str | None = None
    #: Graph API version in the request path.
    whatsapp_api_version: str = "v21.0"
    whatsapp_base_url: str = "https://graph.facebook.com"
    #: The business phone number's Cloud API throughput tier: 80 messages/s by default, up to
    #: 1,000 after Meta upgrades it. The sender stays at or below it (``SenderConfig.cloud_api``).
    messages_per_second: int = 80
    #: More business numbers the bot answers on, besides ``whatsapp_phone_number_id`` (a reply
    #: leaves from the number its message came to; each number has its own rate limits).
    whatsapp_phone_number_ids: tuple[str, ...] = ()
    #: Numbers with a token of their own: read from ``WHATSAPP_ACCESS_TOKEN_<phone number id>``
    #: only (never a flag or TOML key); the others use ``whatsapp_access_token``.
    whatsapp_number_tokens: dict[str, Secret] = {}
    #: The largest media file a handler may download (``ctx.media.download``); Meta's largest is 100 MB.
    media_max_bytes: int = 100 * 1024 * 1024
    #: Downloads larger than this are written to a file (``DownloadedMedia.path``) instead of returned as bytes.
    media_spool_bytes: int = 5 * 1024 * 1024
    #: An approved template sent instead of a free-form reply to a user outside the 24-hour window
    #: (last message over 24 h ago); "" dead-letters such replies with the reason.
    window_fallback_template: str = ""
    window_fallback_language: str = "en_US"
    # Google Sheets
    #: Path to a service-account JSON key file.
    google_application_credentials: str | None = None
    #: Another Sheets API host (the emulator); None means Google.
    sheets_api_endpoint: str | None = None
    spreadsheet_id: str = ""
    #: Sheets API requests per minute the bot may make, shared by all workers (Google's
    #: default quota is 60 reads and 60 writes per minute per user; raise it if yours is higher).
    sheets_read_requests_per_minute: int = 60
    sheets_write_requests_per_minute: int = 60
    # Webhook ingress
    host: str = "127.0.0.1"
    port: int = 8080
    webhook_path: str = "/webhook"
    #: Bodies larger than this are refused with 413 (Meta's webhook payloads are at most 3 MB).
    max_body_bytes: int = 3 * 1024 * 1024
    #: How long a message id (``wamid``) is remembered (in the journal, across restarts) to
    #: drop re-deliveries, in seconds.
    dedup_window: float = 7 * 86400.0
    #: At most this many ids are remembered; the oldest are forgotten first.
    dedup_max_entries: int = 1_000_000
    #: Under backpressure the webhook request waits this long (seconds) for the engine to
    #: accept a message, then answers 503 so that Meta re-delivers it later; 0 answers 503 at once.
    enqueue_timeout: float = 5.0
    high_priority_keywords: tuple[str, ...] = DEFAULT_HIGH_PRIORITY_KEYWORDS
    #: Load shedding: while a message accepted now could expect to wait longer than this (seconds)
    #: for its reply to leave, new message webhooks are answered 503 at once (Meta re-delivers
    #: them later); 0 turns shedding off. The default is half the 2 s the accepted messages' p99
    #: reply latency is meant to stay within under overload. See ``sluiceway.app.shedding``.
    shed_after: float = DEFAULT_MAX_DELAY
    # The webhook server's limits (it faces the internet; see ``sluiceway.http.server``)
    #: Bytes of header names and values per request (431 beyond).
    max_header_bytes: int = http_server.DEFAULT_MAX_HEADER_BYTES
    #: Header lines per request (431 beyond).
    max_headers: int = http_server.DEFAULT_MAX_HEADERS
    #: Bytes of the request target, path and query (414 beyond); at most 16 KiB.
    max_url_bytes: int = http_server.DEFAULT_MAX_URL_BYTES
    #: Seconds from a request's first byte to the end of its headers (408 beyond).
    header_timeout: float = http_server.DEFAULT_HEADER_TIMEOUT
    #: Seconds from the end of a request's headers to the end of its body (408 beyond).
    body_timeout: float = http_server.DEFAULT_BODY_TIMEOUT
    #: Seconds a connection may stay silent, between requests or within one, before it is closed.
    keepalive_timeout: float = http_server.DEFAULT_KEEPALIVE_TIMEOUT
    #: Client connections open at once (new ones beyond get a 503 and are closed); keep it under ``ulimit -n``.
    max_connections: int = http_server.DEFAULT_MAX_CONNECTIONS
    #: Requests a client may pipeline ahead of the one being handled before the server stops reading.
    max_pipelined: int = http_server.MAX_PIPELINED
    # Durability
    #: Directory (created with mode 0700) holding the journal ``journal.sqlite3``: accepted
    #: messages, remembered wamids, the reply outbox and dead letters survive a crash there.
    state_dir: str = "./sluiceway-state"
    # Redis mode (several nodes share one queue and de-dup set)
    #: ``redis://[user:password@]host:port/db``: run as one node of several sharing this Redis
    #: (accepted messages, wamids and engine dead letters live there instead of the journal);
    #: None runs alone on the journal. Its password never prints.
    redis_url: RedisUrl | None = None
    #: Prefix of every key, so that several bots share one Redis.
    redis_namespace: str = "sluiceway"
    #: Start even if Redis does not persist (AOF off) or may evict (maxmemory-policy other than
    #: noeviction): accepted messages may then be lost.
    redis_unsafe: bool = False
    #: Seconds before a dead node's partitions (and the messages it read) move to the others.
    redis_claim_timeout: float = 30.0
    #: This node's name in Redis, unique among the nodes and stable across its restarts: its unsent
    #: replies are kept under it, so a restart under the same name sends them. None: the host name,
    #: ":" and the webhook port (see ``node_name``).
    redis_node: str | None = None
    # Engine and monitor
    #: Worker processes; None uses the engine's default.
    workers: int | None = None
    #: Port of the operator endpoints (dead letters, status), always on 127.0.0.1; 0 picks a free port.
    admin_port: int = 8081
    monitor_host: str = "127.0.0.1"
    #: 0 picks a free port.
    monitor_port: int = 9464
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __post_init__(self) -> None:
        for name in ("port", "admin_port", "monitor_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"{name} must be a TCP port in 0..65535, got {value}")
        if not self.webhook_path.startswith("/"):
            raise ValueError(f"webhook_path must start with '/', got {self.webhook_path!r}")
        if self.max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        for name in ("sheets_read_requests_per_minute", "sheets_write_requests_per_minute", "messages_per_second"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dedup_window <= 0:
            raise ValueError(f"dedup_window must be positive, got {self.dedup_window}")
        if self.dedup_max_entries <= 0:
            raise ValueError(f"dedup_max_entries must be positive, got {self.dedup_max_entries}")
        if self.enqueue_timeout < 0:
            raise ValueError(f"enqueue_timeout must be >= 0, got {self.enqueue_timeout}")
        if self.shed_after < 0:
            raise ValueError(f"shed_after must be >= 0 seconds (0 turns shedding off), got {self.shed_after}")
        for name in SERVER_LIMITS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_url_bytes > http_server.MAX_URL_BYTES_CEILING:
            ceiling = http_server.MAX_URL_BYTES_CEILING
            raise ValueError(f"max_url_bytes must be at most {ceiling} (16 KiB), got {self.max_url_bytes}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not self.host:
            raise ValueError("host must not be empty")
        if not self.state_dir:
            raise ValueError("state_dir must not be empty")
        if self.redis_url is not None and not self.redis_url.reveal().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url must start with redis://, rediss:// or unix://, got {str(self.redis_url)!r}")
        if not self.redis_namespace or any(c in self.redis_namespace for c in " :{}"):
            raise ValueError(
                f"redis_namespace must be a name without spaces, ':' or braces, got {self.redis_namespace!r}"
            )
        if not self.redis_claim_timeout > 0:
            raise ValueError(f"redis_claim_timeout must be positive, got {self.redis_claim_timeout}")
        if self.redis_node is not None and not _NODE_NAME.fullmatch(self.redis_node):
            raise ValueError(
                f"redis_node must be 1 to 128 printable characters without spaces or braces, got {self.redis_node!r}"
            )
        if any(not word.strip() for word in self.high_priority_keywords):
            raise ValueError("high_priority_keywords must not contain empty words")
        if self.media_max_bytes < 1 or self.media_spool_bytes < 0:
            raise ValueError(
                f"media_max_bytes must be positive and media_spool_bytes >= 0, got {self.media_max_bytes}"
                f" and {self.media_spool_bytes}"
            )
        if any(not number.strip().isdigit() for number in self.whatsapp_phone_number_ids):
            raise ValueError(f"whatsapp_phone_number_ids must be digits, got {list(self.whatsapp_phone_number_ids)}")
        if self.window_fallback_template and not self.window_fallback_language:
            raise ValueError("window_fallback_language must be set with window_fallback_template")

    @property
    def phone_numbers(self) -> tuple[str, ...]:
        """Every business number, ``whatsapp_phone_number_id`` first; empty when none is set."""
        first = (self.whatsapp_phone_number_id,) if self.whatsapp_phone_number_id else ()
        return tuple(dict.fromkeys(first + self.whatsapp_phone_number_ids))

    def redacted(self) -> dict[str, Any]:
        """The settings as a plain dict with every secret masked (for ``config check``)."""
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, dict):
                value = {k: str(v) if isinstance(v, Secret) else v for k, v in value.items()}
            out[name] = str(value) if isinstance(value, Secret) else value
        return out

    def worker_json(self) -> bytes:
        """The settings worker processes need, as JSON: everything but the WhatsApp secrets."""
        fields = {k: v for k, v in self.redacted().items() if k not in SECRET_FIELDS}
        # Workers are this user's own processes and connect to Redis themselves (the shared Sheets cache).
        fields["redis_url"] = self.redis_url.reveal() if self.redis_url is not None else None
        return msgspec.json.encode(fields)

    @property
    def node_name(self) -> str:
        """This node's name in Redis mode: ``redis_node``, else the host name, ":" and the webhook port
        (two nodes on one machine differ; a restart on the same port finds its own unsent replies)."""
        return self.redis_node or f"{socket.gethostname()}:{self.port}"

    @property
    def journal_path(self) -> Path:
        """The journal file inside ``state_dir``."""
        return Path(self.state_dir) / JOURNAL_FILE

    def missing_for_production(self) -> list[str]:
        """The settings a real (non-emulated) deployment needs that are not set."""
        needed = ["whatsapp_access_token", "whatsapp_app_secret", "whatsapp_verify_token", "whatsapp_phone_number_id"]
        missing = [name for name in needed if not getattr(self, name)]
        if not self.spreadsheet_id:
            missing.append("spreadsheet_id")
        return missing


_FIELD_TYPES: dict[str, Any] = {
    name: hint
    for name, hint in get_type_hints(Settings).items()
    if name in Settings.__struct_fields__ and name not in _ENV_ONLY_FIELDS
}


def number_token_env(phone_number_id: str) -> str:
    """The environment variable holding ``phone_number_id``'s own access token."""
    return f"WHATSAPP_ACCESS_TOKEN_{phone_number_id}"


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return PROVIDER_ENV_NAMES.get(field, f"SLUICEWAY_{field.upper()}")


def _convert(field: str, raw: object, source: str) -> object:
    if field in SECRET_FIELDS:
        if isinstance(raw, Secret):
            return raw
        if not isinstance(raw, str):
            raise ValueError(f"{field} (from {source}) must be a string")
        return Secret(raw)
    if field == "redis_url":
        if raw is None or isinstance(raw, RedisUrl):
            return raw
        if not isinstance(raw, str):
            raise ValueError(f"{field} (from {source}) must be a string")
        return RedisUrl(raw)
    if field in ("high_priority_keywords", "whatsapp_phone_number_ids") and isinstance(raw, str):
        raw = [word.strip() for word in raw.split(",") if word.strip()]
    try:
        # Environment values are strings: let msgspec coerce "8080" to 8080 and "true" to True.
        return msgspec.convert(raw, _FIELD_TYPES[field], strict=(source != "environment"))
    except msgspec.ValidationError as error:
        # Secrets never reach this point, so showing the rejected value is safe and helpful.
        raise ValueError(f"{field} (from {source}): {error}; got {raw!r}") from None


def load_settings(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build ``Settings`` from flags > environment > TOML file > defaults.

    ``flags`` maps field names to values; ``None`` values mean "flag not given". With
    ``config_file=None`` the file ``sluiceway.toml`` is read when it exists; a path given
    explicitly must exist. Unknown keys in the file and invalid values raise ``ValueError``
    naming the setting.

    Example::

        settings = load_settings(flags={"port": 9000}, environ={"SLUICEWAY_WORKERS": "4"})
    """
    return load_settings_with_sources(flags, environ, config_file)[0]


def load_settings_with_sources(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """``load_settings``, and where each field's value came from (for ``sluiceway config check``).

    The sources read ``"flag --port"``, ``"environment SLUICEWAY_PORT"``, ``"file sluiceway.toml"``
    or ``"default"``; every field has one.

    Example::

        settings, sources = load_settings_with_sources(flags={"port": 9000})
        assert sources["port"] == "flag --port"
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, object] = {}
    sources = dict.fromkeys(_FIELD_TYPES, "default")

    path = Path(config_file) if config_file is not None else Path(DEFAULT_CONFIG_FILE)
    if config_file is not None or path.exists():
        try:
            with path.open("rb") as file:
                table = tomllib.load(file)
        except FileNotFoundError:
            raise ValueError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from None
        for key, value in table.items():
            if key not in _FIELD_TYPES:
                raise ValueError(f"unknown setting {key!r} in {str(path)!r}")
            merged[key] = _convert(key, value, str(path))
            sources[key] = f"file {path}"

    for field in _FIELD_TYPES:
        name = env_name(field)
        if name in environ:
            merged[field] = _convert(field, environ[name], "environment")
            sources[field] = f"environment {name}"

    for field, value in (flags or {}).items():
        if value is None:
            continue
        if field not in _FIELD_TYPES:
            raise ValueError(f"unknown setting {field!r}")
        if field in SECRET_FIELDS:
            raise ValueError(f"{field} is a secret: set {env_name(field)} in the environment, not a flag")
        merged[field] = _convert(field, value, "flags")
        sources[field] = f"flag --{field.replace('_', '-')}"

    numbers = [merged.get("whatsapp_phone_number_id"), *merged.get("whatsapp_phone_number_ids", ())]  # type: ignore[misc]
    tokens = {
        number: Secret(environ[number_token_env(number)])
        for number in numbers
        if isinstance(number, str) and environ.get(number_token_env(number))
    }
    merged["whatsapp_number_tokens"] = tokens
    tokens_from = ", ".join(number_token_env(number) for number in tokens)
    sources["whatsapp_number_tokens"] = f"environment {tokens_from}" if tokens_from else "default"
    return Settings(**merged), sources  # type: ignore[arg-type]


def worker_settings_from_json(data: str | bytes) -> Settings:
    """Rebuild the settings a supervisor passed to its workers with ``Settings.worker_json``."""
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        raise ValueError("worker settings must be a JSON object")
    converted: dict[str, Any] = {name: _convert(name, value, "supervisor") for name, value in raw.items()}
    return Settings(**converted)
