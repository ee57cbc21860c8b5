"""The shipped speaker encoder (ONNX on onnxruntime) against Resemblyzer's own torch model: import and load
time, and the time to embed the windows of a 45 s clip (56 windows of 1.6 s, 0.8 s apart), in one process.
Needs the resemblyzer package (bin/setup). Run from the repository root:

    .venv/bin/python -m bench.speaker_encoder
"""

from __future__ import annotations

import sys
import time

import numpy as np

WINDOWS = np.random.default_rng(0).uniform(-0.3, 0.3, (56, 25600)).astype(np.float32)


def _onnx() -> tuple[float, float]:
    start = time.perf_counter()
    from pipeline.speakers.resemblyzer_encoder import load

    encoder = load()
    loaded = time.perf_counter()
    encoder.embed_batch(WINDOWS)
    return loaded - start, time.perf_counter() - loaded


def _torch() -> tuple[float, float]:
    start = time.perf_counter()
    import torch
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

    from tests.speaker_onnx import resemblyzer_weights

    model = VoiceEncoder("cpu", verbose=False, weights_fpath=resemblyzer_weights())
    loaded = time.perf_counter()
    with torch.no_grad():
        model(torch.from_numpy(np.stack([wav_to_mel_spectrogram(w) for w in WINDOWS])))
    return loaded - start, time.perf_counter() - loaded


def main() -> None:
    load, embed = _onnx()
    print(f"shipped ONNX: import+load {load:.2f} s, 56 windows {embed:.2f} s, torch imported: {'torch' in sys.modules}")
    load, embed = _torch()
    print(f"resemblyzer torch: import+load {load:.2f} s, 56 windows {embed:.2f} s")


if __name__ == "__main__":
    main()
