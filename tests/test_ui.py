"""The web UI over real HTTP, on SQLite and on PostgreSQL, and once in a real browser."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_service import RegistrySettings
from taskschema import TaskContract

from conftest import EXAMPLES, IN_CI, Registry, fresh_postgres_database, start_registry
from helpers import make_contract

SHOP = {
    json.loads(path.read_text())["task"]: json.loads(path.read_text())
    for path in sorted(EXAMPLES.rglob("*.json"))
}
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, not a Playwright download (which cannot be fetched here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def with_shop(registry: Registry) -> Registry:
    for document in SHOP.values():
        response = registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)
        assert response.status_code in (200, 201), response.text
    return registry


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ui(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A registry of this module's own holding the shop contracts, so the shop tasks' versions
    are exactly those of schemas/shop whatever other modules publish."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'registry.db'}"
        for registry in start_registry(RegistrySettings(database_url=url), "sqlite"):
            yield with_shop(registry)
        return
    with fresh_postgres_database() as url:
        for registry in start_registry(RegistrySettings(database_url=url), "postgresql"):
            yield with_shop(registry)


def page(client: httpx.Client, path: str, status: int = 200, **params: Any) -> str:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response.text


def text(markup: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def section(markup: str, element_id: str) -> str:
    match = re.search(rf'<section[^>]* id="{element_id}".*?</section>', markup, re.S)
    assert match, f"no section #{element_id}"
    return match.group(0)


def publish(registry: Registry, document: dict[str, Any]) -> dict[str, Any]:
    response = registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def publish_unchecked(registry: Registry, document: dict[str, Any]) -> dict[str, Any]:
    """Publish even a breaking change: the task's mode is NONE meanwhile, BACKWARD after."""
    name = document["task"]
    registry.admin.put(f"/config/{name}", json={"compatibility": "NONE"})
    try:
        return publish(registry, document)
    finally:
        registry.admin.put(f"/config/{name}", json={"compatibility": "BACKWARD"})


# -- pages -----------------------------------------------------------------------


def test_the_root_redirects_to_the_ui(ui: Registry) -> None:
    response = ui.anonymous.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


def test_the_task_list_shows_every_example_task(ui: Registry) -> None:
    shown = text(page(ui.anonymous, "/ui"))
    for name, document in SHOP.items():
        assert name in shown
        assert document["description"] in shown


def test_the_task_list_searches_by_prefix_and_pages(ui: Registry) -> None:
    orders = sorted(name for name in SHOP if name.startswith("orders."))
    notifications = [name for name in SHOP if name.startswith("notifications.")]
    found = page(ui.anonymous, "/ui", prefix="orders.")
    assert f"of {len(orders)}" in text(found)
    assert all(name in found for name in orders)
    assert not any(name in found for name in notifications)

    first = page(ui.anonymous, "/ui", prefix="orders.", limit=2)
    assert f"Tasks 1\u20132 of {len(orders)}" in text(first)  # an en dash
    assert re.findall(r'class="task-link"[^>]*>([^<]+)<', first) == orders[:2]
    assert 'href="/ui?prefix=orders.&amp;offset=2&amp;limit=2"' in first
    second = page(ui.anonymous, "/ui", prefix="orders.", limit=2, offset=2)
    assert re.findall(r'class="task-link"[^>]*>([^<]+)<', second) == orders[2:4]
    assert 'rel="prev"' in second


def test_the_task_page_shows_description_options_versions_and_mode(ui: Registry) -> None:
    document = SHOP["orders.process_order"]
    markup = page(ui.anonymous, "/ui/tasks/orders.process_order")
    shown = text(markup)
    assert document["description"] in shown
    assert "BACKWARD (the registry's global default)" in shown
    for option, value in document["options"].items():
        assert f"{option} {json.dumps(value)}" in shown
    assert 'href="/ui/tasks/orders.process_order/versions/1"' in markup
    assert 'href="/tasks/orders.process_order"' in markup  # the API's JSON


def test_the_version_page_shows_identity_parameters_and_contract(ui: Registry) -> None:
    document = SHOP["orders.process_order"]
    detail = ui.reader.get("/tasks/orders.process_order/versions/1").json()
    markup = page(ui.anonymous, "/ui/tasks/orders.process_order/versions/1")
    shown = text(markup)
    assert f"schema id {detail['id']}" in shown
    assert f"fingerprint {TaskContract(document).fingerprint}" in shown
    assert re.search(r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown)
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", _table(markup, "parameters"), re.S)]
    assert rows == [
        "args[0] order Order required The order to process.",
        "args[1] priority integer 0..9 default 0 Business priority; 9 is most urgent.",
    ]
    pretty = html.unescape(re.search(r'<pre class="contract"><code>(.*?)</code>', markup, re.S)[1])
    assert json.loads(pretty) == detail["contract"]
    assert pretty.startswith('{\n  "task": "orders.process_order",\n  "description"')
    assert page(ui.anonymous, "/ui/tasks/orders.process_order/versions/latest") == markup


def test_parameter_types_are_summarised(ui: Registry) -> None:
    markup = page(ui.anonymous, "/ui/tasks/orders.bulk_import/versions/1")
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", _table(markup, "parameters"), re.S)]
    assert rows == [
        "args[0] orders array of Order items 1..1000 required",
        "args[1] dry_run boolean default false Validate only, do not persist.",
        'args[2] source one of "csv" | "marketplace" | "legacy_erp" default "csv"',
    ]


def _table(markup: str, css_class: str) -> str:
    match = re.search(rf'<table class="{css_class}">.*?<tbody>(.*?)</tbody>', markup, re.S)
    assert match, f"no table.{css_class}"
    return match.group(1)


def test_the_schema_page_shows_the_contract_by_id(ui: Registry) -> None:
    detail = ui.reader.get("/tasks/notifications.send_email/versions/1").json()
    markup = page(ui.anonymous, f"/ui/schemas/{detail['id']}")
    shown = text(markup)
    assert f"Schema {detail['id']}" in shown
    assert f"fingerprint {detail['fingerprint']}" in shown
    assert "used by v1" in shown
    assert 'href="/ui/tasks/notifications.send_email/versions/1"' in markup
    pretty = html.unescape(re.search(r'<pre class="contract"><code>(.*?)</code>', markup, re.S)[1])
    assert json.loads(pretty) == detail["contract"]


# -- compare ---------------------------------------------------------------------


def test_compare_shows_every_violation_of_a_breaking_change(ui: Registry, task_name: str) -> None:
    publish(ui, make_contract(task_name, properties={"x": {"type": "integer", "maximum": 10}}))
    breaking = make_contract(task_name, properties={"x": {"type": "integer", "maximum": 5}})
    publish_unchecked(ui, breaking)
    expected = ui.reader.post(f"/tasks/{task_name}/compatibility?version=1", json=breaking).json()
    assert expected["violations"], "the change must break BACKWARD"

    markup = page(ui.anonymous, f"/ui/tasks/{task_name}/compare", **{"from": 1, "to": 2})
    verdict = text(section(markup, "verdict"))
    assert "v2 against v1 under BACKWARD incompatible" in verdict
    for violation in expected["violations"]:
        row = (
            f"{violation['side']} {violation['direction']} {violation['path']} "
            f"{violation['rule']} {violation['message']} v1"
        )
        assert row in verdict
    assert "producers still on the older contract send calls" in verdict
    modes = text(_table(markup, "modes"))
    assert "NONE compatible 0 0" in modes
    assert "FORWARD compatible 0 0" in modes
    assert f"FULL incompatible {len(expected['violations'])}" in modes
    # The contracts' diff, side by side: the changed line on both sides.
    for limit in (10, 5):
        assert re.search(rf'<td class="code changed"> +&#34;maximum&#34;: {limit},?</td>', markup)


def test_compare_says_compatible_and_lists_warnings(ui: Registry, task_name: str) -> None:
    y = {"type": "integer", "default": 1}
    publish(ui, make_contract(task_name, properties={"x": {"type": "integer"}, "y": y}))
    changed = {"x": {"type": "integer"}, "y": {**y, "default": 2}}
    publish(ui, make_contract(task_name, properties=changed, required=["x"]))

    # No from/to: the latest version against the one before it.
    markup = page(ui.anonymous, f"/ui/tasks/{task_name}/compare", view="unified")
    verdict = section(markup, "verdict")
    assert "v2 against v1 under BACKWARD" in text(verdict)
    assert '<span class="badge ok">compatible</span>' in verdict
    assert '<table class="issues violations">' not in verdict
    assert "default-changed" in text(_table(verdict, "issues warnings"))
    assert "BACKWARD (in effect) compatible 0 1" in text(_table(markup, "modes"))
    unified = text(re.search(r'<table class="diff unified">.*?</table>', markup, re.S)[0])
    assert '\u2212 "default": 1,' in unified  # a minus sign
    assert '+ "default": 2,' in unified


def test_compare_of_a_single_version_says_there_is_nothing_before(
    ui: Registry, task_name: str
) -> None:
    publish(ui, make_contract(task_name))
    shown = text(page(ui.anonymous, f"/ui/tasks/{task_name}/compare"))
    assert "v1 is the first version listed: there is nothing before it" in shown


# -- soft-deleted versions -------------------------------------------------------


def test_soft_deleted_versions_are_hidden_unless_asked_for(ui: Registry, task_name: str) -> None:
    publish(ui, make_contract(task_name, description="first"))
    publish(ui, make_contract(task_name, description="second"))
    assert ui.admin.delete(f"/tasks/{task_name}/versions/1").status_code == 200
    task_url = f"/ui/tasks/{task_name}"

    hidden = page(ui.anonymous, task_url)
    assert f'href="{task_url}/versions/1"' not in hidden
    assert f'href="{task_url}?deleted=1"' in hidden
    shown = page(ui.anonymous, task_url, deleted=1)
    assert f'href="{task_url}/versions/1?deleted=1"' in shown
    assert "deleted" in text(shown.split(f"{task_url}/versions/1?deleted=1", 1)[1])

    missing = page(ui.anonymous, f"{task_url}/versions/1", 404)
    assert "Soft-deleted versions are hidden" in text(missing)
    assert f'href="{task_url}/versions/1?deleted=1"' in missing
    version = text(page(ui.anonymous, f"{task_url}/versions/1", deleted=1))
    assert "soft-deleted" in version
    assert "first" in version
    assert "v2 is the first version listed" in text(page(ui.anonymous, f"{task_url}/compare"))
    compared = page(ui.anonymous, f"{task_url}/compare", deleted=1)
    assert "v2 against v1 under BACKWARD" in text(section(compared, "verdict"))


# -- escaping, errors, auth ------------------------------------------------------


def test_contract_text_is_escaped_everywhere(ui: Registry, task_name: str) -> None:
    properties = {"x": {"enum": [HOSTILE, "b"], "default": HOSTILE, "description": HOSTILE}}
    first = publish(ui, make_contract(task_name, properties=properties, description=HOSTILE))
    publish(ui, make_contract(task_name, properties=properties, description=HOSTILE + "!"))
    paths = [
        "/ui",
        f"/ui/tasks/{task_name}",
        f"/ui/tasks/{task_name}/versions/1",
        f"/ui/schemas/{first['id']}",
        f"/ui/tasks/{task_name}/compare",
        f"/ui/tasks/{task_name}/compare?view=unified",
    ]
    for path in paths:
        response = ui.anonymous.get(path, params={"prefix": task_name} if path == "/ui" else {})
        assert response.status_code == 200, path
        assert "<script" not in response.text, path
        assert "<img" not in response.text, path
        assert "&lt;script&gt;alert(" in response.text, path
        # And if an escaping slip ever happened, the page could run no script anyway.
        assert "default-src 'none'" in response.headers["content-security-policy"]
    reflected = page(ui.anonymous, "/ui", prefix='"><script>alert(1)</script>')
    assert "<script" not in reflected
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in reflected


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/ui/tasks/nosuch.task", "No task named 'nosuch.task'"),
        (
            "/ui/tasks/orders.process_order/versions/99",
            "Task 'orders.process_order' has no version 99",
        ),
        ("/ui/tasks/nosuch.task/compare", "No task named 'nosuch.task'"),
        ("/ui/schemas/999999", "No schema with id 999999"),
        ("/ui/nowhere", "There is no page /ui/nowhere"),
        ("/ui/tasks/not a name", "There is no such page"),
    ],
)
def test_unknown_things_get_a_friendly_404_page(ui: Registry, path: str, says: str) -> None:
    shown = text(page(ui.anonymous, path, 404))
    assert "404 · Not Found" in shown
    assert says in shown
    assert "Back to the task list" in shown


def test_a_bad_query_gets_an_html_422(ui: Registry) -> None:
    shown = text(page(ui.anonymous, "/ui", 422, limit=0))
    assert "422 · Unprocessable" in shown
    assert "limit:" in shown


def test_the_ui_is_not_in_the_openapi_schema(ui: Registry) -> None:
    paths = ui.anonymous.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith("/ui")]


def test_when_reads_need_a_token_the_ui_answers_401_and_explains(
    tmp_path: Path, task_name: str
) -> None:
    settings = RegistrySettings(
        database_url=f"sqlite:///{tmp_path / 'closed.db'}", require_auth_for_reads=True
    )
    for closed in start_registry(settings, "sqlite"):
        secret = "Quarterly numbers, not for everyone."
        first = publish(closed, make_contract(task_name, description=secret))
        paths = [
            "/ui",
            f"/ui/tasks/{task_name}",
            f"/ui/tasks/{task_name}/versions/1",
            f"/ui/tasks/{task_name}/compare",
            f"/ui/schemas/{first['id']}",
            "/ui/nowhere",
        ]
        for path in paths:
            response = closed.anonymous.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert task_name not in response.text, path
            assert secret not in response.text, path
            assert "requires a token for reads" in text(response.text)
            assert "TASKSCHEMA_REQUIRE_AUTH_FOR_READS" in response.text
        wrong = closed.anonymous.get("/ui", headers={"Authorization": "Bearer tsk_nope"})
        assert wrong.status_code == 401
        assert "unknown or revoked" in text(wrong.text)
        assert secret in text(page(closed.reader, f"/ui/tasks/{task_name}"))
        assert closed.anonymous.get("/ui/static/ui.css").status_code == 200


# -- a real browser --------------------------------------------------------------


def browser_missing(reason: str) -> None:
    """Skip without a browser, except under CI=true, where that is a failure."""
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires the browser test to run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        browser_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        browser_missing(f"Playwright is not installed ({exc})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shop_with_a_breaking_v2(tmp_path: Path) -> Iterator[Registry]:
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    for registry in start_registry(RegistrySettings(database_url=url), "sqlite"):
        with_shop(registry)
        document = json.loads(json.dumps(SHOP["orders.process_order"]))
        document["params"]["properties"]["priority"]["maximum"] = 5
        publish_unchecked(registry, document)
        yield registry


def test_a_browser_follows_the_list_to_a_task_and_compares(
    chromium: Any, shop_with_a_breaking_v2: Registry, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    tab = chromium.new_page(viewport={"width": 1280, "height": 900})
    tab.goto(f"{shop_with_a_breaking_v2.url}/")  # redirected to /ui
    expect(tab.get_by_role("heading", name="Tasks")).to_be_visible()
    tab.get_by_role("link", name="orders.process_order", exact=True).click()
    expect(tab.get_by_role("heading", name="orders.process_order")).to_be_visible()
    expect(tab.get_by_text("Charge the payment method of a new order")).to_be_visible()
    tab.get_by_role("link", name="Compare the latest two versions").click()
    tab.wait_for_url("**/ui/tasks/orders.process_order/compare*")
    verdict = tab.locator("#verdict")
    expect(verdict).to_contain_text("v2 against v1 under BACKWARD")
    expect(verdict.locator(".badge.bad")).to_have_text("incompatible")
    expect(verdict).to_contain_text("limit-tightened")
    expect(verdict).to_contain_text("/params/properties/priority/maximum")
    expect(tab.locator("table.diff td.code.changed").first).to_be_visible()
    screenshot = tab.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert screenshot.startswith(b"\x89PNG")
