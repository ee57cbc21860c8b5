"""Audio read by the slice: a 3-hour recording is never one array in memory.

Every stage that looks at sound (VAD, language ID, decoding) asks for the stretch it needs. The
extracted 16 kHz mono 16-bit WAV is read with seeks; an array in memory (tests, eval clips) answers
the same calls, so callers never care which they were given.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Protocol, Union

import numpy as np

from pipeline.stages.media import SAMPLE_RATE


class AudioSource(Protocol):
    samples: int

    def read_samples(self, start: int, stop: int) -> np.ndarray:
        """float32 in [-1, 1] for samples [start, stop), clamped to the recording."""


class ArrayAudio:
    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.samples = len(audio)

    def read_samples(self, start: int, stop: int) -> np.ndarray:
        return self.audio[max(0, start):max(0, min(stop, self.samples))]


class WavAudio:
    """A 16 kHz mono 16-bit PCM WAV (what `media.extract_audio` writes), read on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with wave.open(str(self.path), "rb") as wav:
            if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise ValueError(f"{self.path}: expected 16 kHz mono 16-bit PCM, got {wav.getframerate()} Hz "
                                 f"x{wav.getnchannels()}, {8 * wav.getsampwidth()}-bit")
            self.samples = wav.getnframes()

    def read_samples(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), max(0, min(stop, self.samples))
        if stop <= start:
            return np.zeros(0, np.float32)
        with wave.open(str(self.path), "rb") as wav:
            wav.setpos(start)
            frames = wav.readframes(stop - start)
        return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0


Audio = Union[np.ndarray, AudioSource]


def as_source(audio: Audio) -> AudioSource:
    return ArrayAudio(audio) if isinstance(audio, np.ndarray) else audio


def read_seconds(source: AudioSource, start_s: float, end_s: float) -> np.ndarray:
    return source.read_samples(int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE))


def duration(source: AudioSource) -> float:
    return source.samples / SAMPLE_RATE
