"""Forward proxies for ``HttpClient``: which one the environment names, and the ``CONNECT`` tunnel.

Only ``http://`` proxies are spoken to (the usual egress proxy; a TLS connection to the proxy
itself is not supported). Credentials come from the proxy URL and go only into a
``Proxy-Authorization`` header; ``Proxy.address`` names the proxy without them for messages.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import urllib.request
from typing import Final, cast

import yarl

#: The largest answer a proxy may give to ``CONNECT`` before the tunnel is up (bytes).
MAX_CONNECT_ANSWER_BYTES: Final = 16 * 1024


class Tunnel(asyncio.Protocol):
    """Reads a proxy's answer to ``CONNECT``; its bytes after that belong to the TLS inside the tunnel."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._received = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return  # refused already; the connection is being closed
        self._received += data
        head, end, rest = self._received.partition(b"\r\n\r\n")
        if end:
            if rest:  # the target's TLS cannot speak before we do: anything more is not a tunnel
                self.answer.set_exception(ValueError("bytes after the CONNECT answer"))
            else:
                self.answer.set_result(head)
        elif len(self._received) > MAX_CONNECT_ANSWER_BYTES:
            self.answer.set_exception(ValueError(f"CONNECT answer over {MAX_CONNECT_ANSWER_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ValueError("the proxy closed the connection"))


class Proxy:
    """Where to send requests instead of the origin, and the credentials it wants (if any)."""

    def __init__(self, url: str) -> None:
        parsed = yarl.URL(url)
        if parsed.scheme != "http" or not parsed.host:
            # The address is named without credentials, which never go in a message.
            where = f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.host else "the proxy URL"
            raise ValueError(f"proxy must be an http:// URL with a host, got {where}")
        self.host: str = parsed.host
        self.port: int = parsed.port or 80
        #: The proxy's address for messages; never its credentials.
        self.address = f"http://{self.host}:{self.port}"
        self.authorization = b""
        if parsed.user is not None:
            token = base64.b64encode(f"{parsed.user}:{parsed.password or ''}".encode()).decode("ascii")
            self.authorization = f"Proxy-Authorization: Basic {token}\r\n".encode("ascii")

    @classmethod
    def from_environment(cls, scheme: str, host: str) -> Proxy | None:
        """The proxy ``<scheme>_proxy`` names for ``host``, unless ``no_proxy`` exempts it or it is this machine.

        Loopback is never proxied (as in Go's net/http): an egress proxy cannot reach the
        emulators and local services a bot talks to, and would see their traffic if it could.
        """
        url = urllib.request.getproxies().get(scheme)
        if not url or _is_loopback(host) or urllib.request.proxy_bypass(host):
            return None
        return cls(url)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
