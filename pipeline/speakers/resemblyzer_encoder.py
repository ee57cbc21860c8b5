"""The shipped speaker encoder: Resemblyzer's GE2E voice encoder, weights read from inside its wheel.

The `resemblyzer` package on PyPI carries its trained model (`pretrained.pt`, Apache-2.0) next to its
code, so installing the package is the whole download: nothing is fetched at run time. Its own mel
spectrogram (librosa) and network are used as they are; the file's SHA-256 goes into the transcript.
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from pipeline.errors import ModelMissingError
from pipeline.hardware import configure_torch
from pipeline.hashing import file_sha256
from pipeline.speakers.encoder import SpeakerEncoder
from pipeline.store.record import ModelRecord

LICENCE = "Apache-2.0"


def weights_path() -> Path:
    """`pretrained.pt` inside the installed package, found without importing it (librosa is slow to load)."""
    spec = find_spec("resemblyzer")
    path = Path(spec.origin).parent / "pretrained.pt" if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise ModelMissingError("the speaker encoder needs the resemblyzer package: run bin/setup, or "
                                "`pip install --no-deps resemblyzer==0.1.4` (or run with --no-diarize)")
    return path


class ResemblyzerEncoder(SpeakerEncoder):
    def __init__(self, path: Path) -> None:
        from resemblyzer import VoiceEncoder

        configure_torch()  # the threads Whisper gets (TESTIMONY_THREADS), whichever model loads first
        self.record = ModelRecord("resemblyzer", path, file_sha256(path),
                                  f"resemblyzer {version('resemblyzer')} wheel on PyPI (its pretrained.pt)", LICENCE)
        self.model = VoiceEncoder("cpu", verbose=False, weights_fpath=path)

    def embed_batch(self, windows: np.ndarray) -> np.ndarray:
        import torch
        from resemblyzer.audio import wav_to_mel_spectrogram

        mels = np.stack([wav_to_mel_spectrogram(w) for w in windows])
        with torch.no_grad():
            return self.model(torch.from_numpy(mels)).numpy()


def check(_spec: str = "resemblyzer") -> None:
    """Raise the clear error when the package (and so its weights) is missing."""
    weights_path()


def load(_spec: str = "resemblyzer") -> ResemblyzerEncoder:
    return ResemblyzerEncoder(weights_path())
