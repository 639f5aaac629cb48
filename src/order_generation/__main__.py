from order_generation.cli import app

app()
