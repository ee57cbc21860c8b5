"""The `testimony` command line; it imports Prefect only for the commands that need it."""

from pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
