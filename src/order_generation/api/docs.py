"""Swagger UI at /docs and ReDoc at /redoc with their scripts, styles and icon served by the
service itself (the copies packaged in fastapi-offline), so the docs work on a closed network.

FastAPI's own pages load them from a CDN; a browser without one shows a blank page. The
pages also carry a Content-Security-Policy that keeps every request on this origin: ReDoc's
sidebar otherwise loads the Redocly logo from the internet."""

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/static"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

# Same origin only. The inline script starts Swagger UI; both UIs style themselves inline;
# ReDoc runs its search in a worker made from a blob and draws icons from data URLs.
_SAME_ORIGIN_ONLY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)


def install_docs(app: FastAPI) -> None:
    """Serve the docs pages and their assets; build the app with docs_url=redoc_url=None."""
    if app.openapi_url is None:
        return
    openapi_url = app.openapi_url
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                # No spec sent to the public validator (its badge is off in this layout anyway).
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_origin_only(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """The page with its policy as the first element of its head, before anything it loads."""
    html = bytes(page.body).decode()
    meta = f'<meta http-equiv="Content-Security-Policy" content="{_SAME_ORIGIN_ONLY}">'
    return HTMLResponse(html.replace("<head>", f"<head>\n    {meta}", 1))
