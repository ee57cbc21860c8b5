"""The reference engine: openai-whisper behind the loop of `asr.core` (`ENGINE`).

Language detection votes over the voiced windows; each chunk is decoded by `whisper.transcribe` on
its own slice with our clip timestamps and guards, its fallback sampling seeded (`seeded_torch`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
import whisper
from whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

from pipeline.asr.core import LOGPROB_THRESHOLD, AsrOptions, chunk_seed
from pipeline.asr.engine import Engine, guards
from pipeline.asr.langid import pick
from pipeline.stages.audio_source import Audio
from pipeline.stages.vad import SpeechRegion, voiced_windows
from pipeline.store.record import ModelRecord


def detect_language(model: whisper.Whisper, audio: Audio, regions: list[SpeechRegion],
                    expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
    """Language voted over voiced windows, among `expected` when given (`asr.langid.pick`)."""
    return pick(language_totals(model, audio, regions), expected)


def language_totals(model: whisper.Whisper, audio: Audio, regions: list[SpeechRegion]) -> dict[str, float]:
    """Whisper's language probabilities averaged over the voiced windows (never the leading
    silence); empty with no speech."""
    windows = voiced_windows(audio, regions)
    if not model.is_multilingual:  # an English-only (.en) model has no language head
        return {"en": 1.0} if windows else {}
    totals: dict[str, float] = {}
    for window in windows:
        mel = pad_or_trim(log_mel_spectrogram(window, model.dims.n_mels), N_FRAMES)
        _, probs = model.detect_language(mel.to(model.device))
        for code, p in probs.items():
            totals[code] = totals.get(code, 0.0) + p / len(windows)
    return totals


def _whisper_decode(model: whisper.Whisper, audio: np.ndarray, clips: list[float], token: str,
                    options: AsrOptions) -> list[dict]:
    decode = dict(model=model, audio=audio, token=token, options=options, clips=clips)
    try:
        with seeded_torch(model, chunk_seed(audio, clips)):
            return _whisper_transcribe(**decode, temperatures=options.temperatures)["segments"]
    except ValueError as exc:
        # Sampling at a fallback temperature can meet a step where Whisper's timestamp rules mask
        # every token (NaN probabilities). Greedy decoding cannot fail that way: fall back to it.
        if "invalid values" not in str(exc):
            raise
        return _whisper_transcribe(**decode, temperatures=(0.0,))["segments"]


_SAMPLING = threading.Lock()  # torch's generator is global: one seeded chunk at a time


@contextmanager
def seeded_torch(model: whisper.Whisper, seed: int) -> Iterator[None]:
    """Torch's generator seeded for one chunk, and given back as it was afterwards."""
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with _SAMPLING, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _whisper_transcribe(*, model: whisper.Whisper, audio: np.ndarray, token: str, options: AsrOptions,
                        clips: list[float], temperatures: tuple[float, ...]) -> dict:
    prompt = {"initial_prompt": options.prompt, "carry_initial_prompt": True} if options.prompt else {}
    return whisper.transcribe(model, audio, **guards(options, token, clips), **prompt, temperature=temperatures,
                              beam_size=options.beam_size, best_of=None if options.beam_size else 1,
                              logprob_threshold=LOGPROB_THRESHOLD, fp16=model.device.type == "cuda", verbose=None)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class WhisperEngine(Engine):
    name = "whisper"

    def device(self, requested: str | None) -> str:
        return requested or default_device()

    def load(self, model: str, device: str) -> tuple[whisper.Whisper, ModelRecord]:
        from pipeline.hardware import configure_torch
        from pipeline.store.whisper_store import load_whisper

        configure_torch()
        return load_whisper(model, device)

    def detect_language(self, model: whisper.Whisper, audio: Audio, regions: list[SpeechRegion],
                        expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
        return detect_language(model, audio, regions, expected)

    def language_totals(self, model: whisper.Whisper, audio: Audio,
                        regions: list[SpeechRegion]) -> dict[str, float]:
        return language_totals(model, audio, regions)

    def decode(self, model: whisper.Whisper, audio: np.ndarray, clips: list[float], token: str,
               options: AsrOptions) -> list[dict]:
        return _whisper_decode(model, audio, clips, token, options)

    def facts(self, model: whisper.Whisper) -> dict[str, Any]:
        return {"engine": "openai-whisper", "engine_version": whisper.__version__}


ENGINE = WhisperEngine()
