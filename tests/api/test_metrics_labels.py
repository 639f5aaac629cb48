"""Request metrics have bounded labels whatever clients send (issue 13.11)."""

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def _series(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    text = (await client.get("/metrics")).text
    return {
        (sample.labels["method"], sample.labels["route"])
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for sample in family.samples
    }


async def test_unknown_methods_and_paths_share_one_label_each(client: httpx.AsyncClient):
    tag = uuid.uuid4().hex[:8]
    before = await _series(client)
    for n in range(5):
        await client.request(f"X{tag}{n}", "/api/v1/models")
        await client.get(f"/api/v1/no-such-{tag}-{n}")
        await client.request(f"Y{tag}{n}", f"/nowhere-{tag}-{n}")
    added = await _series(client) - before - {("GET", "/metrics")}
    labels = {label for series in added for label in series}
    assert not any(tag in label for label in labels), added
    assert added <= {("OTHER", "/api/v1/models"), ("GET", "unmatched"), ("OTHER", "unmatched")}
    after = await _series(client)
    assert {("OTHER", "/api/v1/models"), ("GET", "unmatched"), ("OTHER", "unmatched")} <= after


async def test_known_routes_are_labelled_by_their_template(client: httpx.AsyncClient):
    model_id = uuid.uuid4().hex[:24]
    assert (await client.get(f"/api/v1/model/{model_id}")).status_code == 404
    series = await _series(client)
    assert ("GET", "/api/v1/model/{model_id}") in series
    assert not any(model_id in route for _, route in series)
