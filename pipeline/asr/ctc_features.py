"""What each CTC export takes as input, computed with numpy alone (no torch, no torchaudio).

- Omnilingual CTC (sherpa-onnx export): the waveform itself, normalised per call to zero mean and
  unit variance (eps 1e-5), as sherpa-onnx's reference script feeds it.
- GigaAM: 64 log-mel bands of the power spectrum, 25 ms Hann windows every 10 ms (n_fft 400),
  centred with reflection padding, HTK mel scale without normalisation, log of the value clamped to
  [1e-9, 1e9]: torchaudio's MelSpectrogram defaults with GigaAM's sizes, as its preprocessor builds it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT, HOP, MELS = 400, 160, 64


def model_inputs(fmt: str, audio: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The feed of one call for export `fmt` on `audio` (16 kHz mono), keyed by the model's input names."""
    audio = np.asarray(audio, dtype=np.float32)
    if fmt == "omnilingual-ctc":
        return {names[0]: normalised(audio)[None, :]}
    features = log_mel(audio)
    feed = {names[0]: features[None, :, :]}
    if len(names) > 1:
        feed[names[1]] = np.array([features.shape[1]], dtype=np.int64)
    return feed


def normalised(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: the Omnilingual models were trained on layer-normalised waveforms."""
    mean, var = float(np.mean(audio, dtype=np.float64)), float(np.var(audio, dtype=np.float64))
    return ((audio - mean) / np.sqrt(var + 1e-5)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(64, frames) log-mel features, one frame per 10 ms, float32."""
    padded = np.pad(audio.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect") \
        if len(audio) > N_FFT // 2 else np.pad(audio.astype(np.float64), (N_FFT // 2, N_FFT // 2))
    count = 1 + (len(padded) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(count)[:, None]
    frames = padded[index] * _window()
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2
    mel = _filters() @ power.T
    return np.log(np.clip(mel, 1e-9, 1e9)).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """A periodic Hann window, as torch.hann_window gives."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


@lru_cache(maxsize=1)
def _filters() -> np.ndarray:
    """(64, n_fft/2 + 1) triangular HTK-mel filters over 0..8 kHz, unnormalised."""
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    points = 700.0 * (10 ** (np.linspace(mel(0.0), mel(SAMPLE_RATE / 2), MELS + 2) / 2595.0) - 1.0)
    down = (freqs[None, :] - points[:-2, None]) / (points[1:-1] - points[:-2])[:, None]
    up = (points[2:, None] - freqs[None, :]) / (points[2:] - points[1:-1])[:, None]
    return np.maximum(0.0, np.minimum(down, up))
