"""``/healthz`` and ``/readyz`` on the webhook port, for load balancers and Kubernetes probes."""

from __future__ import annotations

import asyncio

from sluiceway.app.ingress import HEALTH_PATH, READY_PATH, WebhookIngress
from sluiceway.app.secret import Secret
from sluiceway.http.server import Request

from .conftest import Stack


class NoSink:
    """A sink the probes never reach."""

    async def enqueue(self, payload: object, priority: object, ordering_key: str) -> bool:
        raise AssertionError("a probe must not enqueue anything")


def probe(ingress: WebhookIngress, path: str, method: str = "GET") -> tuple[int, str]:
    response = asyncio.run(ingress.handle(Request(method, path, "", {}, b"")))
    return response.status, response.body.decode()


def ingress_with(reason: str | None) -> WebhookIngress:
    return WebhookIngress(app_secret=Secret("s3cret"), sink=NoSink(), not_ready=lambda: reason)  # type: ignore[arg-type]


def test_healthz_answers_while_the_process_serves() -> None:
    """Liveness says nothing about readiness: 200 even while not ready or draining."""
    ingress = ingress_with("no engine worker is ready")
    assert probe(ingress, HEALTH_PATH) == (200, "ok")
    ingress.stop_accepting()
    assert probe(ingress, HEALTH_PATH)[0] == 200
    assert probe(ingress, HEALTH_PATH, "HEAD")[0] == 200


def test_readyz_follows_readiness_and_draining() -> None:
    """Ready: 200. A reason from the runtime: 503 naming it. Draining: 503 "draining", whatever the runtime says."""
    assert probe(ingress_with(None), READY_PATH)[0] == 200
    status, body = probe(ingress_with("the journal is closed"), READY_PATH)
    assert status == 503 and "the journal is closed" in body
    draining = ingress_with(None)
    draining.stop_accepting()
    status, body = probe(draining, READY_PATH)
    assert status == 503 and "draining" in body


def test_probes_answer_only_reads() -> None:
    """A POST to a probe path is not a probe: it is not the webhook either, so 404."""
    assert probe(ingress_with(None), READY_PATH, "POST")[0] == 404


def test_a_running_bot_is_ready_and_not_once_it_drains(stack: type[Stack]) -> None:
    """Through the real runtime and its HTTP server: ready with workers up; 503 once stop() begins."""

    async def scenario() -> None:
        async with stack() as s:
            assert s.runtime is not None and s.session is not None
            base = s.runtime.webhook_url.rsplit("/", 1)[0]
            for path in (HEALTH_PATH, READY_PATH):
                async with s.session.get(base + path) as response:
                    assert response.status == 200, (path, await response.text())
            assert s.runtime.ingress is not None
            s.runtime.ingress.stop_accepting()  # what stop() does first
            async with s.session.get(base + READY_PATH) as response:
                assert response.status == 503 and "draining" in await response.text()
            async with s.session.get(base + HEALTH_PATH) as response:
                assert response.status == 200

    asyncio.run(scenario())
