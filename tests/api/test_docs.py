"""Swagger UI and ReDoc work on a closed network: every script, style, icon and the OpenAPI
document they load comes from the service itself."""

import re
from html.parser import HTMLParser

import httpx
import pytest

PAGES = ["/docs", "/redoc"]
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class _Page(HTMLParser):
    """What a docs page loads: src/href/spec-url attributes, Swagger UI's `url:`, its CSP."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.policy: str | None = None
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.loads += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.policy = values.get("content")
        self._script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._script:
            self.loads += re.findall(r"\burl: '([^']*)'", data)

    def handle_endtag(self, tag: str) -> None:
        self._script = False


async def _page(client: httpx.AsyncClient, path: str) -> tuple[str, _Page]:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _Page()
    page.feed(response.text)
    return response.text, page


@pytest.mark.parametrize("path", PAGES)
async def test_a_docs_page_names_no_other_host(client: httpx.AsyncClient, path: str):
    html, page = await _page(client, path)
    assert "://" not in html, "an absolute URL would leave the service"
    assert "fonts.googleapis" not in html
    assert len(page.loads) >= 3, page.loads  # script, icon, OpenAPI document (and Swagger's CSS)
    for url in page.loads:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url


@pytest.mark.parametrize("path", PAGES)
async def test_everything_a_docs_page_loads_is_served_by_the_service(
    client: httpx.AsyncClient, path: str
):
    _, page = await _page(client, path)
    for url in page.loads:
        response = await client.get(url)
        assert response.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(response.content) > 1000, url


async def test_swagger_ui_has_its_script_and_style_and_redoc_its_script(client: httpx.AsyncClient):
    _, swagger = await _page(client, "/docs")
    _, redoc = await _page(client, "/redoc")
    assert {u.rsplit("/", 1)[1] for u in swagger.loads} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon.png",
        "openapi.json",
    }
    assert {u.rsplit("/", 1)[1] for u in redoc.loads} == {
        "redoc.standalone.js",
        "favicon.png",
        "openapi.json",
    }


@pytest.mark.parametrize("path", PAGES)
async def test_a_docs_page_keeps_the_browser_on_this_origin(client: httpx.AsyncClient, path: str):
    # ReDoc's bundle loads the Redocly logo from the internet; the page's policy refuses it.
    _, page = await _page(client, path)
    assert page.policy is not None
    directives = dict(d.strip().split(" ", 1) for d in page.policy.split(";"))
    assert directives["default-src"] == "'none'"
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    for name, sources in directives.items():
        assert set(sources.split()) <= allowed, name


async def test_the_docs_pages_are_not_in_the_openapi_document(client: httpx.AsyncClient):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]


async def test_an_asset_that_is_not_packaged_is_a_404(client: httpx.AsyncClient):
    assert (await client.get("/docs/static/nope.js")).status_code == 404
