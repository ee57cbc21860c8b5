"""The one place that picks a speaker encoder by name, so the interface (`encoder`) names none.

An encoder is asked for as `resemblyzer` (shipped) or as the path of an ONNX file. Each kind lives in
its own module with two functions, `check(spec)` and `load(spec)`, imported only when asked for: a run
without speakers never loads librosa or torch for them.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from types import ModuleType

from pipeline.errors import ModelMissingError
from pipeline.speakers.encoder import SpeakerEncoder

DEFAULT = "resemblyzer"
_BY_NAME = {DEFAULT: "pipeline.speakers.resemblyzer_encoder"}
_BY_SUFFIX = {".onnx": "pipeline.speakers.onnx_encoder"}


def _module(spec: str) -> ModuleType:
    """The implementation `spec` asks for: a registered name, else a file whose suffix has one."""
    name = _BY_NAME.get(spec) or next((m for s, m in _BY_SUFFIX.items() if spec.endswith(s)), None)
    if name is None:
        raise ModelMissingError(f"unknown speaker encoder {spec!r}: use {DEFAULT} (shipped) or the path of an "
                                "ONNX speaker model (a file ending .onnx)")
    return import_module(name)


def check(spec: str) -> None:
    """Fail now, before any audio is decoded, when `spec` names no encoder that could load."""
    _module(spec).check(spec)


@lru_cache(maxsize=4)
def encoder_for(spec: str) -> SpeakerEncoder:
    """`resemblyzer` (the encoder inside its wheel) or the path of an ONNX speaker model; loaded once."""
    check(spec)
    return _module(spec).load(spec)
