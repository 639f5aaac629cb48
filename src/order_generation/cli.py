"""Command line: `order-generation serve` runs the service."""

import typer
import uvicorn

from order_generation.api.app import create_app
from order_generation.config import Settings
from order_generation.logs import configure_logging

app = typer.Typer(help="GlobeCo Order Generation Service.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """GlobeCo Order Generation Service."""


@app.command()
def serve() -> None:
    """Run the HTTP service (settings from the environment and .env)."""
    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
