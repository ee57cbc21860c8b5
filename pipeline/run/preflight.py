"""What `run` and `serve` refuse before any file is hashed, extracted or decoded.

A missing glossary, a speaker encoder that cannot load, a language with no Whisper token or an ASR
model that is not installed would otherwise surface after minutes of work (in `serve`, after a whole
video was transcribed). Each raises a one-line `TestimonyError` that says what to do; finding the ASR
model never downloads (a missing one names `testimony models install NAME`).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import TestimonyError
from pipeline.run.options import RunOptions


def check_before_work(options: RunOptions, language: str) -> None:
    """Raise the first thing that would stop a run of `options` for `language` (or "auto")."""
    from pipeline.asr.core import whisper_token

    if options.glossary:
        _check_glossary(Path(options.glossary))
    if options.diarize:
        from pipeline.speakers.choice import check

        check(options.speaker_encoder)
    if language != "auto" and options.asr.engine != "ctc":  # a CTC model needs no language token
        whisper_token(language, options.asr.whisper_token)
    _check_asr_model(options.asr.model, options.asr.engine)


def _check_glossary(path: Path) -> None:
    from pipeline.stages.glossary import read_entries

    if not path.is_file():
        raise TestimonyError(f"{path}: no such glossary file (a text file, one name a line)")
    read_entries(path)


def _check_asr_model(model: str, engine: str) -> None:
    """The model is in the store, a file or folder here, or `base` from its packages; never fetched."""
    from pipeline.store.ct2_to_openai import packaged_base_parts

    if model == "base" and engine != "ctc" and packaged_base_parts():  # converted on first use by the run
        return
    if engine == "ctc":
        from pipeline.store.ctc_store import resolve_ctc

        if model:  # none yet: the language (folder, sidecar) will pick its route's CTC model
            resolve_ctc(model)
    elif engine == "faster-whisper":
        from pipeline.store.ct2_store import resolve_ct2

        resolve_ct2(model)
    else:
        from pipeline.store.whisper_store import resolve_whisper

        resolve_whisper(model)
