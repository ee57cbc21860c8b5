"""Whether the scorers (the `eval` extra: jiwer, sacrebleu) are installed, and the one line that says
how to add them: the CLI prints it and the workspace answers it, so both say the same thing."""

from __future__ import annotations

SCORERS = ("jiwer", "sacrebleu")


def missing_scorers_hint(command: str) -> str | None:
    """None when every scorer imports; else what is missing and the pip line that adds it."""
    from importlib.util import find_spec

    missing = [name for name in SCORERS if find_spec(name) is None]
    if not missing:
        return None
    return f"testimony {command} scores with {' and '.join(missing)}: pip install 'testimony[eval]'"
