"""Long recordings: audio is read one stretch at a time, never whole; checkpoints survive torn writes.

The peak-memory figures for 10 minutes, 1 hour and 3 hours live in `bench/memory.py`; here the
property behind them is checked: no stage asks the WAV for more than one VAD block at once.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from pipeline.asr.core import AsrOptions
from pipeline.evaluation.devset import librivox
from pipeline.run.process import RunOptions, process_video
from pipeline.stages import audio_source, vad
from pipeline.stages.audio_source import ArrayAudio, WavAudio
from pipeline.stages.checkpoint import Checkpoint
from pipeline.stages.media import SAMPLE_RATE, extract_audio, load_wav, probe
from pipeline.stages.vad import SpeechRegion, speech_regions, voiced_windows
from pipeline.transcript import Transcript


def _noise_video(path, seconds: float, speech=None, at: float = 0.0):
    """Quiet pink room noise for `seconds`, with `speech` mixed in at `at` seconds if given."""
    inputs = ["-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:duration={seconds}"]
    graph = "[1:a]anull[a]"  # input 0 is the picture
    if speech is not None:
        inputs += ["-i", str(speech)]
        graph = (f"[2:a]aresample=16000,adelay={int(at * 1000)}:all=1[s];"
                 "[1:a][s]amix=inputs=2:duration=first:normalize=0[a]")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=64x48:r=1", *inputs,
                    "-filter_complex", graph, "-map", "0:v", "-map", "[a]", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path)], check=True)
    return path


@pytest.mark.slow
def test_ten_minutes_of_room_noise_is_read_in_blocks_and_invents_nothing(converted_base, tmp_path, monkeypatch):
    """Real Whisper base, `auto` language, 10 minutes without a word (plus a little): zero segments,
    and the biggest single read of the WAV is one VAD block, not the recording."""
    video = _noise_video(tmp_path / "quiet room.mp4", 630)
    largest = []
    real_read = WavAudio.read_samples

    def spy(self, start: int, stop: int):
        largest.append(min(stop, self.samples) - max(0, start))
        return real_read(self, start, stop)

    monkeypatch.setattr(WavAudio, "read_samples", spy)
    options = RunOptions(asr=AsrOptions(model=str(converted_base)), translate=False, follow_routes=False)
    result = process_video(video, tmp_path / "archive", options)
    transcript = Transcript.load(result.bundle / "transcript.json")
    assert transcript.segments == [] and "no speech found in the audio" in transcript.warnings
    assert transcript.source.decoded_duration == pytest.approx(630, abs=0.5)
    assert largest and max(largest) <= vad.VAD_BLOCK_S * SAMPLE_RATE < 630 * SAMPLE_RATE


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """A real LibriVox answer 20 s into 40 s of room noise, as the pipeline extracts it."""
    root = tmp_path_factory.mktemp("long")
    clip = sorted(librivox(), key=lambda c: c[1])[0][1]
    video = _noise_video(root / "v.mp4", 40, speech=clip, at=20.0)
    return extract_audio(probe(video), root / "audio.wav").wav_path


def test_speech_cut_by_a_vad_block_edge_is_joined(speech_wav, monkeypatch):
    whole = speech_regions(load_wav(speech_wav))
    assert len(whole) == 1 and 19 < whole[0].start < 21
    edge = (whole[0].start + whole[0].end) / 2  # a block boundary in the middle of the answer
    monkeypatch.setattr(vad, "VAD_BLOCK_S", edge)
    blocked = speech_regions(WavAudio(speech_wav))
    assert len(blocked) == 1, blocked
    assert blocked[0].start == pytest.approx(whole[0].start, abs=0.3)
    assert blocked[0].end == pytest.approx(whole[0].end, abs=0.3)


def test_wav_and_array_give_the_same_audio_and_windows(speech_wav):
    array, wav = load_wav(speech_wav), WavAudio(speech_wav)
    assert wav.samples == len(array)
    np.testing.assert_array_equal(wav.read_samples(12_345, 67_890), array[12_345:67_890])
    np.testing.assert_array_equal(wav.read_samples(len(array) - 10, len(array) + 100), array[-10:])
    regions = [SpeechRegion(1.0, 9.5), SpeechRegion(20.0, 38.0), SpeechRegion(39.0, 39.9)]
    for a, b in zip(voiced_windows(wav, regions, window_s=5), voiced_windows(ArrayAudio(array), regions, window_s=5)):
        np.testing.assert_array_equal(a, b)
    assert audio_source.duration(wav) == pytest.approx(40, abs=0.1)


def test_long_regions_are_decoded_in_bounded_chunks():
    chunks = vad.decode_chunks([SpeechRegion(0.0, 3 * 3600.0)])  # VAD off on a 3-hour file
    assert len(chunks) == 18 and all(c.duration <= vad.MAX_CHUNK_S for c in chunks)
    assert chunks[0].start == 0.0 and chunks[-1].end == 3 * 3600.0
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_a_long_stretch_is_cut_where_it_is_quietest():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(700 * SAMPLE_RATE)).astype(np.float32)  # 700 s without a pause...
    audio[int(594.2 * SAMPLE_RATE):int(594.6 * SAMPLE_RATE)] = 0.0  # ...but one, 6 s before the 600 s mark
    chunks = vad.decode_chunks([SpeechRegion(0.0, 700.0)], ArrayAudio(audio))
    assert len(chunks) == 2 and 594.2 <= chunks[0].end <= 594.6 and chunks[1].start == chunks[0].end


def test_checkpoint_drops_a_line_torn_by_a_kill(tmp_path):
    path = tmp_path / "asr-x.jsonl"
    first = Checkpoint(path)
    first.add("plan", speech=[[1.0, 2.0]])
    first.add("group", index=0, segments=[{"text": "a"}])
    with open(path, "ab") as f:
        f.write(b'{"kind": "group", "index": 1, "segm')  # the write a SIGKILL cut short
    again = Checkpoint(path)
    assert [e["kind"] for e in again.entries] == ["plan", "group"]
    again.add("group", index=1, segments=[])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["plan", "group", "group"]


def test_checkpoint_of_other_weights_or_audio_is_not_mixed_in(tmp_path):
    path = tmp_path / "asr-x.jsonl"
    old = Checkpoint(path, identity={"model_sha256": "a" * 64, "wav_sha256": "b" * 64})
    old.add("group", index=0, start=0.0, end=5.0, segments=[{"text": "from the old weights"}])
    same = Checkpoint(path, identity={"model_sha256": "a" * 64, "wav_sha256": "b" * 64})
    assert len(same.find("group")) == 1
    reinstalled = Checkpoint(path, identity={"model_sha256": "c" * 64, "wav_sha256": "b" * 64})
    assert reinstalled.find("group") == [] and reinstalled.entries[0]["model_sha256"] == "c" * 64
    assert len(path.read_text().splitlines()) == 1
