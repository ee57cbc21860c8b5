"""A speaker model a user brings as ONNX: a batch of 16 kHz waveforms in, one embedding per row out.

onnxruntime is already here (faster-whisper's VAD runs on it). The model's first input takes float32
audio shaped (batch, samples) and its first output gives (batch, dim); anything that computes its own
features inside the graph (an exported ECAPA or ResNet speaker model, say) fits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import ModelMissingError
from pipeline.hashing import file_sha256
from pipeline.speakers.encoder import SpeakerEncoder
from pipeline.store.record import ModelRecord


class OnnxEncoder(SpeakerEncoder):
    def __init__(self, path: Path, record: ModelRecord | None = None) -> None:
        """`record` names a model this package ships (its origin and licence); a user's file is cited by path."""
        import onnxruntime

        self.record = record or ModelRecord(path.name, path, file_sha256(path), f"ONNX speaker model {path}")
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def embed_batch(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: windows.astype(np.float32)})[0])



def check(spec: str) -> None:
    """A path that is not a file fails before any audio is decoded."""
    if not Path(spec).is_file():
        raise ModelMissingError(f"{spec}: no such ONNX speaker model")


def load(spec: str) -> OnnxEncoder:
    return OnnxEncoder(Path(spec))
