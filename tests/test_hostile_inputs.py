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
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from pipeline.cli.main import main
from pipeline.stages import media as media_module
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


def _hanging(tool: str, d: Path, when: str) -> str:
    """The real `tool`, hung as on a dead disk when its arguments contain `when`: it stops itself
    (SIGSTOP) before it starts, so only the deadline ends it. (A playlist naming a pipe used to hang
    ffmpeg for real; playlists are refused now, before any tool reads them.)"""
    real = media_module.ffprobe_binary() if tool == "ffprobe" else media_module.ffmpeg_binary()
    media_module.allowed_formats()  # listed by the real ffmpeg first: the stand-in only decides when to hang
    script = d / f"hung-{tool}"
    script.write_text(f'#!/bin/sh\ncase "$*" in *{when}*) kill -STOP $$;; esac\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return str(script)


def test_a_file_that_hangs_ffmpeg_is_stopped_and_the_next_goes_on(media, tiny_whisper, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("TESTIMONY_PROBE_TIMEOUT", "2")
    hangs = mf.video_from_audio(media / "kk.wav", tmp_path / "hangs.mp4", lead_silence=0.5)
    hung = _hanging("ffprobe", tmp_path, "hangs.mp4")
    monkeypatch.setattr(media_module, "ffprobe_binary", lambda: hung)
    good = mf.video_from_audio(media / "kk.wav", tmp_path / "good.mp4")
    archive = tmp_path / "archive"
    code, out = _run([str(hangs), str(good)], archive, tiny_whisper, capsys)
    assert code == 1 and len(out) == 2, out
    assert out[0].startswith(f"FAILED {hangs}: ") and "did not finish within 2 s and was stopped" in out[0], out
    assert out[1].endswith("\tdone"), "the next file is processed"
    assert [p.name for p in (archive / "originals").iterdir()] == [f"{_sha(good)}.mp4"], "the hung file is not kept"


def test_a_playlist_naming_other_files_is_refused_unread(media, tiny_whisper, tmp_path, capsys):
    """An ffconcat or HLS playlist names other files (another original, a pipe): set aside as not a
    recording, and nothing it names is read or kept."""
    other = mf.video_from_audio(media / "kk.wav", tmp_path / "other.mp4", lead_silence=0.7)
    (tmp_path / "list.mp4").write_text(f"ffconcat version 1.0\nfile {other.name}\n", encoding="utf-8")
    (tmp_path / "list.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{other.name}\n"
                                        "#EXT-X-ENDLIST\n", encoding="utf-8")
    good = mf.video_from_audio(media / "kk.wav", tmp_path / "good.mp4")
    archive = tmp_path / "archive"
    code, out = _run([str(tmp_path / "list.mp4"), str(tmp_path / "list.m3u8"), str(good)], archive, tiny_whisper,
                     capsys)
    assert code == 1 and len(out) == 3, out
    assert out[0] == (f"FAILED {tmp_path / 'list.mp4'}: is a playlist (ffconcat) naming other files, not a "
                      "recording; it is never followed. Copy the recording itself into the inbox (or give its "
                      "own path)."), out
    assert out[1].startswith(f"FAILED {tmp_path / 'list.m3u8'}: is a playlist (HLS .m3u8) naming other files"), out
    assert out[2].endswith("\tdone")
    assert [p.name for p in (archive / "originals").iterdir()] == [f"{_sha(good)}.mp4"], "nothing of other.mp4"


@pytest.mark.parametrize("text", ["ffconcat version 1.0\nfile pipe.wav\n",
                                  "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\npipe.wav\n#EXT-X-ENDLIST\n"])
def test_the_tools_never_open_what_a_playlist_names(tmp_path, text):
    """The second wall, behind the check of a playlist's first line: ffprobe given the flags every input
    gets refuses the playlist format itself. The playlist names a pipe nobody writes to, which ffprobe
    would wait on forever if it opened it."""
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "list.mp4").write_text(text, encoding="utf-8")
    done = subprocess.run([media_module.ffprobe_binary(), *media_module.input_args(), "-show_format", "-of", "json",
                           f"file:{tmp_path / 'list.mp4'}"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Format not on whitelist" in done.stderr, done.stderr[-500:]
    assert {"concat", "hls"}.isdisjoint(media_module.allowed_formats().split(",")), "listed formats are all allowed"
    assert {"mov", "matroska", "wav", "mp3", "avi", "ogg", "flac"} <= set(media_module.allowed_formats().split(","))


def test_a_pipe_named_like_a_video_is_refused_unread(media, tiny_whisper, tmp_path, capsys):
    os.mkfifo(tmp_path / "x.mp4")
    good = mf.video_from_audio(media / "kk.wav", tmp_path / "good.mp4")
    code, out = _run([str(tmp_path / "x.mp4"), str(good)], tmp_path / "archive", tiny_whisper, capsys)
    assert code == 1 and len(out) == 2, out
    assert out[0] == (f"FAILED {tmp_path / 'x.mp4'}: is not a regular file (a pipe, socket or "
                      "device). Copy the recording itself into a file and give that."), out
    assert out[1].endswith("\tdone")


def test_a_decode_that_hangs_is_stopped(tmp_path, monkeypatch):
    """ffmpeg hangs while decoding (stopped as on a dead disk): it is killed at its deadline and leaves no
    partial WAV."""
    from pipeline.errors import BadInputError

    monkeypatch.setenv("TESTIMONY_EXTRACT_TIMEOUT", "3")
    mf.ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-ar", "16000", str(tmp_path / "a.wav"))
    info = media_module.probe(tmp_path / "a.wav")
    hung = _hanging("ffmpeg", tmp_path, "audio.wav")
    monkeypatch.setattr(media_module, "ffmpeg_binary", lambda: hung)
    with pytest.raises(BadInputError, match="extracting the audio.* did not finish within 3 s and was stopped"):
        media_module.extract_audio(info, tmp_path / "work" / "audio.wav")
    assert os.listdir(tmp_path / "work") == [], "no partial WAV is left"
