"""Errors a user can act on: what went wrong, with which file, and what to do."""

from __future__ import annotations

from pathlib import Path


class TestimonyError(Exception):
    """Base class: the message is shown to the user as-is, never a stack trace."""


class BadInputError(TestimonyError):
    """The input itself is unusable; retrying will not help."""

    def __init__(self, path: str | Path, problem: str, hint: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{self.path}: {problem}. {hint}")


class ModelMissingError(TestimonyError):
    """A model the route needs is not in the store; the message says how to get it."""


class OriginalChangedError(TestimonyError):
    """The file changed between its hash and its copy into the archive (still being written)."""


class ModelIntegrityError(ModelMissingError):
    """A model's files no longer match the SHA-256 recorded when it was installed."""
