"""The interface every ASR engine fills in, and the one place that picks an engine by name.

An engine knows four things: which device it runs on, how to load a model, how to score languages
over voiced windows and how to decode one chunk. Everything else that shapes a transcript (voiced
regions, chunking, checkpoints, rerouting, flags, per-segment confidence) is `asr.core`'s loop,
shared, so two engines cannot drift apart. Each engine lives in its own module, imported only when
asked for: the faster-whisper path never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import import_module
from typing import Any, ClassVar

import numpy as np

from pipeline.asr.core import (
    COMPRESSION_RATIO_THRESHOLD,
    ENGINES,
    NO_SPEECH_THRESHOLD,
    AsrOptions,
    AsrResult,
    Reroute,
    transcribe_with,
    whisper_token,
)
from pipeline.stages.audio_source import Audio
from pipeline.stages.checkpoint import Checkpoint
from pipeline.stages.vad import SpeechRegion
from pipeline.store.record import ModelRecord

_MODULES = {"whisper": "pipeline.asr.whisper_engine", "faster-whisper": "pipeline.asr.fw_engine",
            "ctc": "pipeline.asr.ctc_engine"}


class Engine(ABC):
    """One way of running an ASR model; subclasses fill in the four steps, `transcribe` is shared."""

    name: ClassVar[str]  # what the transcript's models.asr.engine says

    @abstractmethod
    def device(self, requested: str | None) -> str:
        """The device to run on: `requested` when given (checked), else the best one present."""

    @abstractmethod
    def load(self, model: str, device: str) -> tuple[Any, ModelRecord]:
        """The model (once per process) and the record of the file it came from."""

    @abstractmethod
    def detect_language(self, model: Any, audio: Audio, regions: list[SpeechRegion],
                        expected: tuple[str, ...] | None = None) -> tuple[str | None, float | None]:
        """(language, probability) averaged over the voiced windows, the most probable among
        `expected` when given (`asr.langid`); (None, None) with no speech."""

    @abstractmethod
    def language_totals(self, model: Any, audio: Audio, regions: list[SpeechRegion]) -> dict[str, float]:
        """Whisper's probability of every language, averaged over the voiced windows ({} with none)."""

    @abstractmethod
    def decode(self, model: Any, audio: np.ndarray, clips: list[float], token: str,
               options: AsrOptions) -> list[dict]:
        """One chunk's segments in openai-whisper's dict shape, times relative to `audio`, fallback
        sampling seeded from the chunk (`asr.core.chunk_seed`)."""

    @abstractmethod
    def facts(self, model: Any) -> dict[str, Any]:
        """What the transcript records about the engine that ran `model`."""

    def token(self, language: str, options: AsrOptions) -> str:
        """The language token `decode` is given: Whisper's (an error for a language it has none for)."""
        return whisper_token(language, options.whisper_token)

    def transcribe(self, model: Any, audio: Audio, options: AsrOptions, *, progress: bool = False,
                   reroute: Reroute | None = None, checkpoint: Checkpoint | None = None) -> AsrResult:
        """Transcribe 16 kHz mono audio (an array or a `WavAudio`) into flagged segments with absolute
        times. `reroute`, given the detected language, may hand back the model and options that
        language's route wants (a Kazakh fine-tune, say), so detection and decoding need not share
        a model, nor an engine: decoding and the token go to the engine the decoding options name."""
        return transcribe_with(model, audio, options, detect=self.language_totals, decode=_decode_by_engine,
                               token=lambda language, chosen: engine_for(chosen.engine).token(language, chosen),
                               progress=progress, reroute=reroute, checkpoint=checkpoint)


def _decode_by_engine(model: Any, audio: np.ndarray, clips: list[float], token: str,
                      options: AsrOptions) -> list[dict]:
    """Decode with the engine `options` name: after a reroute, not always the one that detected."""
    return engine_for(options.engine).decode(model, audio, clips, token, options)


def engine_for(name: str) -> Engine:
    """The engine called `name` (one of `asr.core.ENGINES`), its module imported on first use."""
    if name not in ENGINES:
        raise ValueError(f"unknown ASR engine {name!r}: use one of {', '.join(ENGINES)}")
    return import_module(_MODULES[name]).ENGINE


def guards(options: AsrOptions, token: str, clips: list[float]) -> dict[str, Any]:
    """The decoding settings both engines pass under the same names: the language token, our clips,
    no conditioning on earlier text (it carries one hallucination into the next window), the
    compression and no-speech thresholds, and hallucination-silence skipping with word times.
    The log-prob threshold is spelled differently by each engine, so each adds it."""
    return {"language": token, "task": "transcribe", "clip_timestamps": clips,
            "compression_ratio_threshold": COMPRESSION_RATIO_THRESHOLD, "no_speech_threshold": NO_SPEECH_THRESHOLD,
            "condition_on_previous_text": False, "word_timestamps": options.word_timestamps,
            "hallucination_silence_threshold": 2.0 if options.word_timestamps else None}
