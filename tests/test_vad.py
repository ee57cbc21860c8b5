"""Voice activity detection on real speech and silence, and the clips handed to Whisper."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.media import extract_audio, load_wav, probe
from pipeline.stages.vad import SpeechRegion, clip_timestamps, speech_regions, voiced_windows

from . import media_factory as mf


def test_regions_follow_the_speech(media, tmp_path):
    video = mf.video_from_audio(media / "en.wav", tmp_path / "v.mp4", lead_silence=4.0, tail_silence=3.0)
    audio = load_wav(extract_audio(probe(video), tmp_path / "a.wav").wav_path)
    regions = speech_regions(audio)
    assert regions, "espeak speech is speech"
    assert 3.5 <= regions[0].start <= 4.3
    assert regions[-1].end <= len(audio) / 16000 - 2.0


def test_silence_and_empty_audio_have_no_regions():
    assert speech_regions(np.zeros(16000 * 5, np.float32)) == []
    assert speech_regions(np.zeros(0, np.float32)) == []


def test_clip_ends_never_pass_the_last_whole_frame():
    # 3.005 s of audio has 300 whole frames; a region ending at 3.01 would hang Whisper's seek loop.
    samples = int(3.005 * 16000)
    assert clip_timestamps([SpeechRegion(0.0, 3.01)], samples) == [0.0, 3.0]
    assert clip_timestamps([SpeechRegion(1.0, 2.0), SpeechRegion(3.0, 3.2)], samples) == [1.0, 2.0]


def test_voiced_windows_skip_silence():
    audio = np.zeros(16000 * 100, np.float32)
    audio[16000 * 50:16000 * 60] = 0.5
    windows = voiced_windows(audio, [SpeechRegion(50.0, 60.0)])
    assert len(windows) == 1 and len(windows[0]) == 16000 * 10 and windows[0].min() == pytest.approx(0.5)
