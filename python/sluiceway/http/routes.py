"""``Routes``: exact-path dispatch for ``HttpServer``, enough for the admin and monitor endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sluiceway.http.messages import Request, Response

Endpoint = Callable[[Request], Awaitable[Response]]


class Routes:
    """Maps ``(method, path)`` to an endpoint; an unknown path is 404, a known path with another method 405.

    A ``GET`` endpoint also answers ``HEAD``.

    Example::

        routes = Routes()
        routes.add("GET", "/status", status)
        server = HttpServer(routes.handle)
    """

    def __init__(self) -> None:
        self._endpoints: dict[str, dict[str, Endpoint]] = {}

    def add(self, method: str, path: str, endpoint: Endpoint) -> None:
        """Serve ``method`` ``path`` with ``endpoint``; ``ValueError`` if that pair is taken or the path is relative."""
        if not path.startswith("/"):
            raise ValueError(f"a route's path must start with '/', got {path!r}")
        methods = self._endpoints.setdefault(path, {})
        if method in methods:
            raise ValueError(f"{method} {path} already has an endpoint")
        methods[method] = endpoint

    async def handle(self, request: Request) -> Response:
        """The endpoint's answer, or 404 / 405 (with ``Allow``)."""
        methods = self._endpoints.get(request.path)
        if methods is None:
            return Response.text(404, f"nothing at {request.path}")
        # HEAD is answered as GET would be; the server leaves the body out.
        endpoint = methods.get("GET" if request.method == "HEAD" else request.method)
        if endpoint is None:
            allowed = ", ".join(sorted(methods))
            return Response.text(405, f"{request.method} not allowed", headers={"Allow": allowed})
        return await endpoint(request)
