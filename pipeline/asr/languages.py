"""Whisper's language codes and names, read without importing openai-whisper (and with it, torch).

`import whisper.tokenizer` runs `whisper/__init__.py`, which imports torch: two seconds and ~230 MiB
that the faster-whisper engine, `testimony list` and an argument check never need. The tables live
in openai-whisper's own `tokenizer.py`, which needs only tiktoken, so that one file is loaded alone.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

_NAME = "_testimony_whisper_tokenizer"


@lru_cache(maxsize=1)
def _tables() -> ModuleType:
    if "whisper.tokenizer" in sys.modules:  # already paid for: use it
        return sys.modules["whisper.tokenizer"]
    spec = importlib.util.find_spec("whisper")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("openai-whisper is not installed (run bin/setup)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    loaded = importlib.util.spec_from_file_location(_NAME, path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def languages() -> dict[str, str]:
    """Code -> English name of every language Whisper has a token for (`kk` -> `kazakh`)."""
    return _tables().LANGUAGES


def codes_by_name() -> dict[str, str]:
    """English name (and aliases) -> code (`kazakh` -> `kk`)."""
    return _tables().TO_LANGUAGE_CODE
