"""`python -m beststag_cli` runs the CLI (same as the `beststag` script)."""

from beststag_cli.cli import app

app()
