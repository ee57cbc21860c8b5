"""The shipped speaker encoder: Resemblyzer's GE2E voice encoder, as an ONNX model inside this package.

The trained weights (`pretrained.pt` of the `resemblyzer` 0.1.4 wheel, Apache-2.0) were exported once,
mel spectrogram included, to `weights/resemblyzer.onnx` (see `weights/README.md`), so installing
testimony is the whole download: nothing is fetched at run time, the package that cannot be installed
with its declared dependencies (a Python 2 `typing`, a `webrtcvad` that imports the removed
pkg_resources) is not needed, and the encoder runs on onnxruntime, not torch. The file's SHA-256 goes
into the transcript.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ModelMissingError
from pipeline.hashing import file_sha256
from pipeline.store.record import ModelRecord

if TYPE_CHECKING:
    from pipeline.speakers.onnx_encoder import OnnxEncoder

LICENCE = "Apache-2.0"
ORIGIN = "resemblyzer 0.1.4 pretrained.pt (PyPI wheel), exported to ONNX with its mel spectrogram; shipped in testimony"
WEIGHTS = Path(__file__).resolve().parent / "weights" / "resemblyzer.onnx"


def weights_path() -> Path:
    """The ONNX file inside the installed package; an install that lost it says how to get it back."""
    if not WEIGHTS.is_file():
        raise ModelMissingError(f"the shipped speaker encoder {WEIGHTS} is missing: reinstall testimony "
                                "(or run with --no-diarize)")
    return WEIGHTS


def check(_spec: str = "resemblyzer") -> None:
    """Raise the clear error when the shipped file is missing."""
    weights_path()


def load(_spec: str = "resemblyzer") -> OnnxEncoder:
    """The shipped encoder, cited as `resemblyzer` with its licence (the ONNX class does the running)."""
    from pipeline.speakers.onnx_encoder import OnnxEncoder

    path = weights_path()
    return OnnxEncoder(path, ModelRecord("resemblyzer", path, file_sha256(path), ORIGIN, LICENCE))
