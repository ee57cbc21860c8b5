"""The speaker encoder shipped inside the package (ONNX) is Resemblyzer's trained model: on real speech
it gives the embeddings Resemblyzer's own torch network gives, and it is cited with its licence."""

from __future__ import annotations

import numpy as np

from pipeline.hashing import file_sha256
from pipeline.speakers.choice import encoder_for
from pipeline.speakers.resemblyzer_encoder import LICENCE, weights_path
from pipeline.stages.audio_source import WavAudio
from pipeline.stages.media import SAMPLE_RATE
from pipeline.stages.vad import SpeechRegion

from . import media_factory as mf
from .speaker_onnx import resemblyzer_weights


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_the_shipped_onnx_encoder_is_resemblyzers_model(tmp_path):
    import torch
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

    spoken = mf.speak(mf.udhr("en")[1], "en", tmp_path / "en-22k.wav")
    mf.ffmpeg("-i", str(spoken), "-ar", str(SAMPLE_RATE), "-ac", "1", "-c:a", "pcm_s16le", str(tmp_path / "en.wav"))
    wav = tmp_path / "en.wav"
    audio = WavAudio(wav)
    regions = [SpeechRegion(start, start + 1.6) for start in np.arange(0.0, 4.0, 0.8)]
    shipped = encoder_for("resemblyzer")
    ours = shipped.embed(audio, regions)

    reference = VoiceEncoder("cpu", verbose=False, weights_fpath=resemblyzer_weights())
    windows = [audio.read_samples(round(r.start * SAMPLE_RATE), round(r.end * SAMPLE_RATE)) for r in regions]
    with torch.no_grad():
        theirs = reference(torch.from_numpy(np.stack([wav_to_mel_spectrogram(w) for w in windows]))).numpy()
    assert np.abs(ours - _unit(theirs.astype(np.float64))).max() < 1e-4
    assert shipped.record.name == "resemblyzer" and shipped.record.licence == LICENCE == "Apache-2.0"
    assert shipped.record.sha256 == file_sha256(weights_path())
    assert (weights_path().parent / "LICENSE-resemblyzer").read_text().startswith(" " * 33 + "Apache License")
