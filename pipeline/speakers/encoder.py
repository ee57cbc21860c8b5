"""The interface every speaker encoder fills in, and the one place that picks an encoder by name.

An encoder turns equal-length windows of 16 kHz speech into unit vectors that lie close together for
one voice and apart for two. Reading the windows from the recording, batching them and normalising the
vectors is done here once, so the shipped encoder (`resemblyzer_encoder`) and one a user brings
(`onnx_encoder`) cannot drift apart. Each lives in its own module, imported only when asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from importlib import import_module
from pathlib import Path

import numpy as np

from pipeline.errors import ModelMissingError
from pipeline.stages.audio_source import AudioSource
from pipeline.stages.media import SAMPLE_RATE
from pipeline.stages.vad import SpeechRegion
from pipeline.store.record import ModelRecord

DEFAULT = "resemblyzer"
BATCH = 64  # windows per forward pass: memory stays flat however long the recording is


class SpeakerEncoder(ABC):
    """One speaker-embedding model, loaded; `embed` is shared, subclasses fill in `embed_batch`."""

    record: ModelRecord  # what the transcript's models.speakers cites: file, SHA-256, origin, licence

    @abstractmethod
    def embed_batch(self, windows: np.ndarray) -> np.ndarray:
        """(batch, samples) float32 audio in [-1, 1] -> (batch, dim) embeddings (not yet normalised)."""

    def embed(self, audio: AudioSource, regions: list[SpeechRegion]) -> np.ndarray:
        """One unit vector per region of `audio`, in order. Regions are windows of one length (the
        first's), so they batch; one running past the end of the recording is padded with silence."""
        if not regions:
            return np.zeros((0, 0))
        size = round(regions[0].duration * SAMPLE_RATE)
        vectors = [self.embed_batch(np.stack([_window(audio, r.start, size) for r in regions[n:n + BATCH]]))
                   for n in range(0, len(regions), BATCH)]
        matrix = np.concatenate(vectors).astype(np.float64)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)


def _window(audio: AudioSource, start: float, size: int) -> np.ndarray:
    first = round(start * SAMPLE_RATE)
    samples = audio.read_samples(first, first + size)
    return np.pad(samples, (0, size - len(samples))).astype(np.float32)


def check(spec: str) -> None:
    """Fail now, before any audio is decoded, when `spec` names no encoder that could load."""
    if spec == DEFAULT:
        import_module("pipeline.speakers.resemblyzer_encoder").weights_path()
    elif not spec.endswith(".onnx"):
        raise ModelMissingError(f"unknown speaker encoder {spec!r}: use {DEFAULT} (shipped) or the path of an "
                                "ONNX speaker model (a file ending .onnx)")
    elif not Path(spec).is_file():
        raise ModelMissingError(f"{spec}: no such ONNX speaker model")


@lru_cache(maxsize=4)
def encoder_for(spec: str) -> SpeakerEncoder:
    """`resemblyzer` (the encoder shipped in this package) or the path of an ONNX speaker model; loaded once."""
    check(spec)
    if spec == DEFAULT:
        return import_module("pipeline.speakers.resemblyzer_encoder").load()
    return import_module("pipeline.speakers.onnx_encoder").OnnxEncoder(Path(spec))
