"""Resemblyzer's speaker encoder as an ONNX model that takes raw 16 kHz audio: how the shipped encoder
was made, and made again at test time.

This is also what a user-imported ONNX speaker model looks like to `pipeline.speakers.onnx_encoder`: audio
(batch, samples) in, embeddings out. The mel spectrogram Resemblyzer computes with librosa is built into
the graph (a DFT as a strided convolution, then librosa's own mel filters), so the export needs no STFT
operator and gives the same embeddings as the shipped encoder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

N_FFT, HOP, MELS, RATE = 400, 160, 40, 16000  # resemblyzer.hparams: 25 ms windows, 10 ms steps, 40 mels


class WaveformEncoder(torch.nn.Module):
    """librosa.feature.melspectrogram (centred, zero-padded, Hann, power 2) then the GE2E network."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        import librosa

        n = np.arange(N_FFT)
        window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as librosa's get_window("hann")
        angles = 2 * np.pi * np.outer(np.arange(N_FFT // 2 + 1), n) / N_FFT
        kernels = np.concatenate([np.cos(angles), -np.sin(angles)]) * window
        self.register_buffer("dft", torch.tensor(kernels[:, None, :], dtype=torch.float32))
        mel = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=MELS)
        self.register_buffer("mel", torch.tensor(mel, dtype=torch.float32))
        self.lstm, self.linear = encoder.lstm, encoder.linear

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(wav.unsqueeze(1), (N_FFT // 2, N_FFT // 2))
        spectrum = torch.nn.functional.conv1d(padded, self.dft, stride=HOP)
        power = spectrum[:, :N_FFT // 2 + 1] ** 2 + spectrum[:, N_FFT // 2 + 1:] ** 2
        frames = torch.matmul(self.mel, power).transpose(1, 2)
        _, (hidden, _) = self.lstm(frames)
        return torch.relu(self.linear(hidden[-1]))


def resemblyzer_weights() -> Path:
    """`pretrained.pt` inside the resemblyzer package (bin/setup installs it for the tests)."""
    from importlib.util import find_spec

    return Path(find_spec("resemblyzer").origin).parent / "pretrained.pt"


def export_resemblyzer(out: Path) -> Path:
    """Resemblyzer's trained weights as `out` (ONNX, opset 17, batch and length free): how the shipped
    `pipeline/speakers/weights/resemblyzer.onnx` was made (bin/export-speaker-encoder)."""
    from resemblyzer import VoiceEncoder

    model = WaveformEncoder(VoiceEncoder("cpu", verbose=False, weights_fpath=resemblyzer_weights())).eval()
    with warnings.catch_warnings():  # the legacy exporter's notes on LSTM batch sizes: every batch runs alike
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 25600),), str(out), input_names=["audio"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"audio": {0: "batch", 1: "samples"}, "embedding": {0: "batch"}})
    return out
