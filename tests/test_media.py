"""Media stage on real files made with ffmpeg and espeak-ng."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import BadInputError
from pipeline.stages.media import extract_audio, load_wav, probe, wav_duration

from . import media_factory as mf


def _extract(video: Path, tmp_path: Path, **kw):
    return extract_audio(probe(video), tmp_path / "out" / "audio.wav", **kw)


@pytest.mark.parametrize("container,vcodec,acodec", [
    ("mp4", "libx264", "aac"),
    ("webm", "libvpx-vp9", "libopus"),
])
def test_extracts_16k_mono_of_full_length(media, tmp_path, container, vcodec, acodec):
    video = mf.video_from_audio(media / "kk.wav", tmp_path / f"v.{container}", lead_silence=1.0,
                                vcodec=vcodec, acodec=acodec, rate=48000)
    audio = _extract(video, tmp_path)
    samples = load_wav(audio.wav_path)
    assert audio.truncated is False
    assert abs(audio.decoded_duration - audio.container_duration) < 0.5
    assert len(samples) == pytest.approx(audio.decoded_duration * 16000, abs=1)
    assert samples.dtype.name == "float32" and 0.01 < abs(samples).max() <= 1.0


def test_48k_stereo_becomes_16k_mono(media, tmp_path):
    video = mf.video_from_audio(media / "en.wav", tmp_path / "stereo.mp4", rate=48000, channels=2)
    info = probe(video)
    assert (info.audio[0].sample_rate, info.audio[0].channels) == (48000, 2)
    audio = _extract(video, tmp_path)
    assert wav_duration(audio.wav_path) == pytest.approx(info.duration, abs=0.3)


def test_two_tracks_default_and_explicit(media, tmp_path):
    video = mf.two_track_mkv(media / "kk.wav", media / "en.wav", tmp_path / "two.mkv")
    info = probe(video)
    assert len(info.audio) == 2
    default = _extract(video, tmp_path)
    assert default.stream.track == 1  # the stream marked default, not simply the first
    assert default.truncated is False, "tracks of different lengths are not truncation"
    first = _extract(video, tmp_path, track=0)
    assert first.stream.track == 0 and first.truncated is False
    assert first.decoded_duration != pytest.approx(default.decoded_duration, abs=0.05)
    with pytest.raises(BadInputError, match="no audio track 5.*--audio-track"):
        _extract(video, tmp_path, track=5)


def test_truncated_file_is_flagged_not_silently_shortened(media, tmp_path):
    whole = mf.video_from_audio(media / "kk.wav", tmp_path / "whole.mp4", tail_silence=20,
                                extra=("-movflags", "+faststart"))
    cut = mf.truncate(whole, tmp_path / "cut.mp4", 0.5)
    audio = _extract(cut, tmp_path)
    assert audio.container_duration == pytest.approx(probe(whole).duration, abs=0.1)
    assert audio.truncated is True
    assert audio.decoded_duration < audio.container_duration - 1


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: _file(d / "empty.mp4", b""), "empty"),
    (lambda d: _file(d / "notes.mp4", b"not a video\n"), "not a video or audio file"),
    (lambda d: _file(d / "noise.mp4", bytes(range(256)) * 400), "not a video or audio file"),
    (lambda d: mf.video_without_audio(d / "mute.mp4"), "no audio stream"),
    (lambda d: d / "missing.mp4", "not found"),
])
def test_bad_inputs_name_the_file_and_the_fix(tmp_path, make, message):
    video = make(tmp_path)
    before = video.read_bytes() if video.exists() else None
    with pytest.raises(BadInputError) as err:
        _extract(video, tmp_path)
    text = str(err.value)
    assert str(video) in text and message in text
    assert err.value.hint  # says what to do
    assert (video.read_bytes() if video.exists() else None) == before  # the original is untouched


def test_truncated_mp4_without_index_is_a_clear_error(media, tmp_path):
    whole = mf.video_from_audio(media / "kk.wav", tmp_path / "whole.mp4")  # moov atom at the end
    cut = mf.truncate(whole, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(BadInputError, match="cut.mp4.*not a video or audio file"):
        probe(cut)


PROBE = "import sys; from pipeline.stages.media import probe; probe(sys.argv[1])"


def test_unreadable_file(media, tmp_path):
    """A file its reader may not open. Root ignores permission bits, so under root the probe runs in a
    process that has dropped the two capabilities that let it (setpriv), and is refused like any user."""
    import os
    import shutil
    import subprocess
    import sys

    video = mf.video_from_audio(media / "en.wav", tmp_path / "locked.mp4")
    video.chmod(0)
    wrapper = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): permissions do not stop reads")
        wrapper = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    try:
        done = subprocess.run([*wrapper, sys.executable, "-c", PROBE, str(video)], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parent.parent, timeout=120)
    finally:
        video.chmod(0o644)
    assert done.returncode != 0
    assert "BadInputError" in done.stderr and "permission" in done.stderr.lower(), done.stderr
    assert "locked.mp4" in done.stderr


def test_pip_only_ffmpeg_fallback_matches_system_ffprobe(media, tmp_path, monkeypatch):
    """Without system ffmpeg, imageio-ffmpeg's binary probes (by parsing `ffmpeg -i`) and extracts."""
    import imageio_ffmpeg

    from pipeline.stages import media as media_module

    video = mf.two_track_mkv(media / "kk.wav", media / "en.wav", tmp_path / "two.mkv")
    with_ffprobe = probe(video)
    monkeypatch.setattr(media_module, "ffmpeg_binary", imageio_ffmpeg.get_ffmpeg_exe)
    monkeypatch.setattr(media_module, "ffprobe_binary", lambda: None)
    parsed = probe(video)
    assert parsed.duration == pytest.approx(with_ffprobe.duration, abs=0.01)
    assert [(a.index, a.track, a.channels, a.sample_rate, a.default, a.duration) for a in parsed.audio] == \
        [(a.index, a.track, a.channels, a.sample_rate, a.default, a.duration) for a in with_ffprobe.audio]
    audio = extract_audio(parsed, tmp_path / "a.wav")
    assert audio.stream.track == 1 and audio.truncated is False
    with pytest.raises(BadInputError, match="not a video or audio file"):
        probe(_file(tmp_path / "junk.mp4", b"junk" * 100))
