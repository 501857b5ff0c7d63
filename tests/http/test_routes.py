"""Routes over a real HttpServer: exact paths, 404 for unknown ones, 405 with Allow, HEAD answered as GET."""

from __future__ import annotations

import asyncio

import pytest

from sluiceway.http import HttpClient, HttpServer, Request, Response
from sluiceway.http.routes import Routes


async def hello(request: Request) -> Response:
    return Response.text(200, f"hello {request.query.get('name', '')}")


async def made(_: Request) -> Response:
    return Response.text(201, "made")


def test_routes_answer_exact_paths_and_refuse_the_rest() -> None:
    """Each (method, path) reaches its endpoint; other paths are 404, other methods 405 naming the allowed ones."""

    async def scenario() -> None:
        routes = Routes()
        routes.add("GET", "/hello", hello)
        routes.add("POST", "/hello", made)
        server = HttpServer(routes.handle)
        await server.start()
        try:
            async with HttpClient(server.url, trust_env=False) as http:
                answer = await http.get("/hello?name=ana")
                assert (answer.status, answer.body) == (200, b"hello ana")
                assert (await http.post("/hello", b"")).status == 201
                assert (await http.get("/hello/")).status == 404
                assert (await http.get("/")).status == 404
                refused = await http.request("DELETE", "/hello")
                assert (refused.status, refused.headers["allow"]) == (405, "GET, POST")
        finally:
            await server.stop()
        # HEAD gets GET's answer; the server leaves the body out (the client cannot read HEAD answers).
        head = await routes.handle(Request("HEAD", "/hello", "name=bo", {}, b""))
        assert (head.status, head.body) == (200, b"hello bo")

    asyncio.run(scenario())


def test_a_taken_route_or_relative_path_is_refused() -> None:
    """Adding the same method and path twice, or a path without a leading slash, raises ValueError."""
    routes = Routes()
    routes.add("GET", "/a", hello)
    with pytest.raises(ValueError, match="GET /a already"):
        routes.add("GET", "/a", made)
    with pytest.raises(ValueError, match="must start with '/'"):
        routes.add("GET", "a", hello)
