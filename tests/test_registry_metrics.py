"""The registry's Prometheus endpoint, scraped over real HTTP."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import Registry
from helpers import make_contract

ROUTE = "/tasks/{name}/versions"


def samples(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], **labels: str) -> float:
    key = ("taskschema_registry_requests_total", frozenset(labels.items()))
    return scraped.get(key, 0.0)


def test_publish_outcomes_are_counted_by_route_template_and_status(
    registry: Registry, task_name: str
) -> None:
    before = samples(registry.anonymous)
    contract = make_contract(task_name)
    registry.publisher.post(f"/tasks/{task_name}/versions", json=contract).raise_for_status()
    registry.publisher.post(f"/tasks/{task_name}/versions", json=contract).raise_for_status()
    breaking = make_contract(task_name, properties={"x": {"type": "string"}})
    refused = registry.publisher.post(f"/tasks/{task_name}/versions", json=breaking)
    assert refused.status_code == 409
    assert registry.anonymous.get("/no/such/path").status_code == 404
    after = samples(registry.anonymous)

    def delta(**labels: str) -> float:
        return requests(after, **labels) - requests(before, **labels)

    assert delta(method="POST", route=ROUTE, status="201") == 1
    assert delta(method="POST", route=ROUTE, status="200") == 1
    assert delta(method="POST", route=ROUTE, status="409") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    # Task names never become labels: the raw path appears nowhere in the output.
    assert not any(task_name in str(labels) for _, labels in after)
    latency = ("taskschema_registry_request_seconds_count", frozenset({
        ("method", "POST"), ("route", ROUTE)
    }))  # fmt: skip
    assert after[latency] - before.get(latency, 0.0) == 3


def test_metrics_need_no_token(registry: Registry) -> None:
    assert registry.anonymous.get("/metrics").status_code == 200
