"""Hostile and broken inputs through `testimony run`: a clear one-line failure or a correct bundle, and
the original byte-for-byte where it was.

Already covered elsewhere through the CLI: a text file named .mp4, names with a leading dash (absolute
path), colon, quotes, newline, Uyghur letters, Kazakh letters with spaces, non-UTF-8 bytes
(tests/test_pipeline.py); the media stage on each broken file (tests/test_media.py).
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Callable

import pytest

from pipeline.cli.main import main
from pipeline.transcript import TRUNCATED, Transcript

from . import media_factory as mf
from .test_pipeline import TINY_FLAGS

Make = Callable[[Path, Path], Path]  # (media folder, work folder) -> the input file


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(args: list[str], archive: Path, model: Path, capsys) -> tuple[int, list[str]]:
    code = main(["run", "--out", str(archive), "--language", "kk", "--asr-model", str(model), "--no-translate",
                 *TINY_FLAGS, *args])
    return code, capsys.readouterr().out.splitlines()


def _bundle(archive: Path) -> Transcript:
    found = list(archive.glob("*/transcript.json"))
    assert len(found) == 1, found
    return Transcript.load(found[0])


def _bytes(name: str, data: bytes) -> Make:
    def make(_media: Path, d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


def _cut_index(media: Path, d: Path) -> Path:
    """Half an mp4 whose index (moov) sits at the end: nothing left to find the samples with."""
    return mf.truncate(mf.video_from_audio(media / "kk.wav", d / "whole.mp4"), d / "cut.mp4", 0.5)


def _damaged_header(media: Path, d: Path) -> Path:
    video = mf.video_from_audio(media / "kk.wav", d / "damaged.mp4", extra=("-movflags", "+faststart"))
    data = bytearray(video.read_bytes())
    data[:64] = random.Random(1).randbytes(64)
    video.write_bytes(data)
    return video


def _two_tracks(media: Path, d: Path) -> Path:
    return mf.two_track_mkv(media / "kk.wav", media / "en.wav", d / "two tracks.mkv")


def _huge_duration(media: Path, d: Path) -> Path:
    """A real mp4 whose movie and media headers claim ~49 days (mvhd/mdhd duration fields rewritten)."""
    video = mf.video_from_audio(media / "kk.wav", d / "huge.mp4", extra=("-movflags", "+faststart"))
    data = bytearray(video.read_bytes())
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box)
        while at != -1:
            version = data[at + 4]
            field = at + 8 + (16 if version == 1 else 8) + 4  # after version/flags, times, timescale
            width = 8 if version == 1 else 4
            data[field:field + width] = (0xFFFFFF00).to_bytes(width, "big")
            at = data.find(box, at + 4)
    video.write_bytes(data)
    return video


FAILURES: list[tuple[str, Make, list[str], str]] = [
    ("zero-byte", _bytes("empty.mp4", b""), [], "is empty (0 bytes)"),
    ("random-bytes", _bytes("noise.mp4", random.Random(0).randbytes(200_000)), [], "not a video or audio file"),
    ("no-audio", lambda _m, d: mf.video_without_audio(d / "mute.mp4"), [], "has no audio stream"),
    ("cut-index", _cut_index, [], "not a video or audio file"),
    ("missing-track", _two_tracks, ["--audio-track", "5"], "no audio track 5"),
]


@pytest.mark.parametrize("make,args,message", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_broken_input_fails_with_one_line(media, tiny_whisper, tmp_path, capsys, make, args, message):
    video = make(media, tmp_path)
    before = _sha(video)
    archive = tmp_path / "archive"
    code, out = _run([*args, str(video)], archive, tiny_whisper, capsys)
    assert code == 1 and len(out) == 1, out
    assert out[0].startswith(f"FAILED {video}: ") and message in out[0], out[0]
    assert _sha(video) == before, "the original is untouched"
    assert not list(archive.glob("*/transcript.json")), "no bundle for a failed file"
    assert not list(archive.glob(".work/*")), "no derived audio left behind"
    assert not list(archive.glob("originals/*")), "probed before it is preserved: never copied into originals/"


def test_damaged_header_fails_cleanly_or_is_read(media, tiny_whisper, tmp_path, capsys):
    video = _damaged_header(media, tmp_path)
    before = _sha(video)
    code, out = _run([str(video)], tmp_path / "archive", tiny_whisper, capsys)
    assert len(out) == 1, out
    if code == 1:
        assert out[0].startswith(f"FAILED {video}: ") and "not a video or audio file" in out[0], out[0]
    else:  # ffmpeg recovered: then the bundle must describe this exact file
        assert code == 0 and out[0].endswith("\tdone")
        assert _bundle(tmp_path / "archive").source.sha256 == before
    assert _sha(video) == before


def _truncated(media: Path, d: Path) -> Path:
    whole = mf.video_from_audio(media / "kk.wav", d / "whole.mp4", tail_silence=20,
                                extra=("-movflags", "+faststart"))
    return mf.truncate(whole, d / "cut.mp4", 0.5)


def _check_truncated(t: Transcript) -> None:
    assert TRUNCATED in t.flags and any("truncated" in w for w in t.warnings)


def _check_silence(t: Transcript) -> None:
    assert t.segments == [] and "no speech found in the audio" in t.warnings


def _check_stereo(t: Transcript) -> None:
    assert (t.source.audio_track["sample_rate"], t.source.audio_track["channels"]) == (48000, 2)
    assert TRUNCATED not in t.flags and t.source.decoded_duration == pytest.approx(t.source.duration, abs=0.3)


def _check_track(track: int) -> Callable[[Transcript], None]:
    def check(t: Transcript) -> None:
        assert t.source.audio_track["track"] == track and TRUNCATED not in t.flags
    return check


def _check_huge(t: Transcript) -> None:
    """The header's claim is recorded as the file makes it; the audio stream's own length (from its sample
    table) matches what was decoded, so the whole sound was transcribed and nothing is flagged."""
    assert t.source.duration > 1e6 and t.source.decoded_duration < 60
    assert t.source.audio_track["duration"] == pytest.approx(t.source.decoded_duration, abs=0.3)
    assert TRUNCATED not in t.flags
    assert any("container claims" in w for w in t.warnings), "the mismatch is said, not hidden"


SUCCESSES: list[tuple[str, Make, list[str], Callable[[Transcript], None]]] = [
    ("truncated", _truncated, [], _check_truncated),
    ("silence-only", lambda _m, d: mf.silence_video(d / "quiet.mp4", 8), [], _check_silence),
    ("48k-stereo", lambda m, d: mf.video_from_audio(m / "kk.wav", d / "stereo.mp4", rate=48000, channels=2),
     [], _check_stereo),
    ("two-tracks-default", _two_tracks, [], _check_track(1)),
    ("two-tracks-chosen", _two_tracks, ["--audio-track", "0"], _check_track(0)),
    ("two-tracks-explicit-default", _two_tracks, ["--audio-track", "1"], _check_track(1)),
    ("huge-duration-header", _huge_duration, [], _check_huge),
]


@pytest.mark.parametrize("make,args,check", [s[1:] for s in SUCCESSES], ids=[s[0] for s in SUCCESSES])
def test_odd_input_gives_a_correct_bundle(media, tiny_whisper, tmp_path, capsys, make, args, check):
    video = make(media, tmp_path)
    before = _sha(video)
    archive = tmp_path / "archive"
    code, out = _run([*args, str(video)], archive, tiny_whisper, capsys)
    assert code == 0 and len(out) == 1 and out[0].endswith("\tdone"), out
    transcript = _bundle(archive)
    assert transcript.source.sha256 == before
    check(transcript)
    if not transcript.segments:  # nothing heard, nothing invented
        bundle = next(archive.glob("*/transcript.json")).parent
        assert all(p.read_text(encoding="utf-8").strip() == "" for p in bundle.glob("*.txt"))
    assert _sha(video) == before and video.exists()


@pytest.mark.parametrize("form", [["./-x.mp4"], ["--", "-x.mp4"]], ids=["dot-slash", "double-dash"])
def test_leading_dash_relative_name(media, tiny_whisper, tmp_path, capsys, monkeypatch, form):
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "src.mp4").rename(tmp_path / "-x.mp4")
    before = _sha(video)
    monkeypatch.chdir(tmp_path)
    code, out = _run(form, tmp_path / "archive", tiny_whisper, capsys)
    assert code == 0 and len(out) == 1 and out[0].endswith("\tdone"), out
    transcript = _bundle(tmp_path / "archive")
    assert transcript.source.file_name == "-x.mp4" and transcript.source.sha256 == before
    assert _sha(video) == before


def test_symlink_is_read_through_and_left_alone(media, tiny_whisper, tmp_path, capsys):
    target = mf.video_from_audio(media / "kk.wav", tmp_path / "real video.mp4")
    link = tmp_path / "link.mp4"
    link.symlink_to(target.name)
    before = _sha(target)
    code, out = _run([str(link)], tmp_path / "archive", tiny_whisper, capsys)
    assert code == 0 and out[0].endswith("\tdone"), out
    assert _bundle(tmp_path / "archive").source.sha256 == before, "the target's bytes are what was hashed"
    assert link.is_symlink() and os.readlink(link) == target.name
    assert _sha(target) == before


def _hanging(d: Path) -> Path:
    """A file ffprobe and ffmpeg wait on forever: a concat playlist (which ffmpeg recognises whatever the
    name) naming a pipe nobody writes to."""
    os.mkfifo(d / "pipe.wav")
    (d / "hangs.mp4").write_text("ffconcat version 1.0\nfile pipe.wav\n", encoding="utf-8")
    return d / "hangs.mp4"


def test_a_file_that_hangs_ffmpeg_is_stopped_and_the_next_goes_on(media, tiny_whisper, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("TESTIMONY_PROBE_TIMEOUT", "2")
    hangs = _hanging(tmp_path)
    good = mf.video_from_audio(media / "kk.wav", tmp_path / "good.mp4")
    archive = tmp_path / "archive"
    code, out = _run([str(hangs), str(good)], archive, tiny_whisper, capsys)
    assert code == 1 and len(out) == 2, out
    assert out[0].startswith(f"FAILED {hangs}: ") and "did not finish within 2 s and was stopped" in out[0], out
    assert out[1].endswith("\tdone"), "the next file is processed"
    assert [p.name for p in (archive / "originals").iterdir()] == [f"{_sha(good)}.mp4"], "the hung file is not kept"


def test_a_pipe_named_like_a_video_is_refused_unread(media, tiny_whisper, tmp_path, capsys):
    os.mkfifo(tmp_path / "x.mp4")
    good = mf.video_from_audio(media / "kk.wav", tmp_path / "good.mp4")
    code, out = _run([str(tmp_path / "x.mp4"), str(good)], tmp_path / "archive", tiny_whisper, capsys)
    assert code == 1 and len(out) == 2, out
    assert out[0] == (f"FAILED {tmp_path / 'x.mp4'}: is not a regular file (a pipe, socket or "
                      "device). Copy the recording itself into a file and give that."), out
    assert out[1].endswith("\tdone")


def test_a_decode_that_hangs_is_stopped(tmp_path, monkeypatch):
    """A playlist whose first entry is real audio (so the probe passes) and whose second is a pipe: the
    decode waits on the pipe until its deadline, is killed, and leaves no partial WAV."""
    from pipeline.errors import BadInputError
    from pipeline.stages.media import extract_audio, probe

    monkeypatch.setenv("TESTIMONY_EXTRACT_TIMEOUT", "3")
    mf.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-ar", "16000", str(tmp_path / "a.wav"))
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "list.mp4").write_text("ffconcat version 1.0\nfile a.wav\nfile pipe.wav\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="extracting the audio.* did not finish within 3 s and was stopped"):
        extract_audio(probe(tmp_path / "list.mp4"), tmp_path / "work" / "audio.wav")
    assert os.listdir(tmp_path / "work") == [], "no partial WAV is left"
