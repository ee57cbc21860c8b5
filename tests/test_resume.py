"""Kill the process with a real SIGKILL at every stage; the next run must finish the same transcript.

Each kill is either a named failpoint (`pipeline/failpoints.py`: the process SIGKILLs itself at
that exact point) or, for extraction, the test killing the whole process group while ffmpeg is
still writing. Runs are `testimony run` subprocesses with real Whisper base on real LibriVox speech.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.archive import custody
from pipeline.evaluation.devset import librivox
from pipeline.stages.media import wav_duration

from . import media_factory as mf
from .test_pipeline import TINY_FLAGS
from .tiny_models.argos import build_tiny_argos_package

LEAD, PAUSE = 3.0, 12.0  # pauses longer than vad.window_groups' 10 s gap: one decode chunk per clip


def _run(video: Path, archive: Path, *args: str, kill_at: str | None = None, **popen) -> subprocess.Popen:
    env = dict(os.environ, TESTIMONY_KILL_AT=kill_at or "")
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run", str(video), "--out", str(archive),
                             *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _content(archive: Path) -> dict:
    """The published transcript without its creation time (the one field two runs may not share)."""
    (path,) = archive.glob("*/transcript.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("created")
    return data


def _complete_looking(archive: Path) -> list[str]:
    return [p.name for p in archive.iterdir() if not p.name.startswith(".") and (p / "transcript.json").exists()]


@pytest.fixture(scope="module")
def interview(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """Three real LibriVox answers after a quiet start, 12 s apart; and where each one sits."""
    clips = [wav for _, wav, _ in sorted(librivox(), key=lambda clip: clip[1])][:3]
    root = tmp_path_factory.mktemp("resume")
    video = mf.interview_video(clips, root / "interview.mp4", lead_silence=LEAD, pause=PAUSE)
    spans, at = [], LEAD
    for clip in clips:
        spans.append((at, at + wav_duration(clip)))
        at += wav_duration(clip) + PAUSE
    return video, spans


@pytest.fixture(scope="module")
def base_args(converted_base) -> list[str]:
    return ["--language", "en", "--asr-model", str(converted_base)]


@pytest.fixture(scope="module")
def uninterrupted(interview, base_args, tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("uninterrupted") / "archive"
    code, out = _finish(_run(interview[0], archive, *base_args))
    assert code == 0, out
    return _content(archive)


def test_uninterrupted_times_fall_on_the_speech(interview, uninterrupted):
    """Chunks are decoded from their own slice of the WAV: times must come back on the recording's clock."""
    _video, spans = interview
    segments = uninterrupted["segments"]
    assert len(segments) >= 3
    for seg in segments:
        assert any(a - 0.5 <= seg["start"] < seg["end"] <= b + 0.5 for a, b in spans), seg
        assert all(seg["start"] - 0.01 <= w["start"] <= w["end"] <= seg["end"] + 0.01 for w in seg["words"])
    assert {next(i for i, (a, b) in enumerate(spans) if a - 0.5 <= s["start"] <= b) for s in segments} == {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("point,resumed_from", [
    ("extract:written", None),  # ffmpeg finished, its WAV not yet renamed into place
    ("asr:plan", "transcribe"),  # voiced regions found, nothing decoded
    ("asr:group#1", "transcribe"),  # one chunk of three decoded
    ("asr:group#2", "transcribe"),
    ("publish:staged", "transcribe"),  # every bundle file written and fsynced, not yet renamed
    ("publish:renamed", None),  # bundle in place, the custody log not yet told
])
def test_sigkill_then_rerun_gives_the_same_transcript(point, resumed_from, interview, base_args, uninterrupted,
                                                       tmp_path):
    video, _spans = interview
    archive = tmp_path / "archive"
    before = video.read_bytes()

    code, out = _finish(_run(video, archive, *base_args, kill_at=point))
    assert code == -signal.SIGKILL, out
    work = next((archive / ".work").iterdir(), None)
    if point == "publish:renamed":
        assert _complete_looking(archive), "the rename is the publish"
    else:
        assert _complete_looking(archive) == [], "nothing half-made looks like a bundle"
        assert work is not None and (work / "audio.wav.partial").exists() == (point == "extract:written")
        assert (work / "audio.wav").exists() == (point != "extract:written")
    if point.startswith("asr:group"):
        (checkpoint,) = work.glob("asr-*.jsonl")
        assert sum('"kind": "group"' in line for line in checkpoint.read_text().splitlines()) == int(point[-1])

    code, out = _finish(_run(video, archive, *base_args))
    assert code == 0, out
    assert _content(archive) == uninterrupted
    assert video.read_bytes() == before
    assert [p.name for p in archive.iterdir() if p.name.startswith(".") and p.name not in (".work", ".locks")] == [], \
        "no staging or retired folder is left"
    assert not (archive / ".work").exists()

    (bundle,) = [archive / name for name in _complete_looking(archive)]
    sha = uninterrupted["source"]["sha256"]
    events = custody.read(archive, sha)
    assert custody.check_chain(archive, sha) == []
    resumes = [e for e in events if e["event"] == "resume"]
    if resumed_from == "transcribe":
        assert {"stage": "extract"}.items() <= resumes[0].items(), "the killed run's WAV was reused"
        done = int(point[-1]) if point.startswith("asr:group") else (3 if point == "publish:staged" else 0)
        assert [e.get("chunks_done") for e in resumes[1:]] == ([done] if done else [])
    if point == "publish:renamed":
        assert [e["event"] for e in events[-2:]] == ["stage", "reused"] and events[-2]["recovered"]
    verify = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "verify", bundle.name, "--out", str(archive)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.slow
def test_sigkill_while_ffmpeg_writes(interview, base_args, uninterrupted, tmp_path):
    """The whole process group killed mid-extraction: no WAV is taken for finished; the rerun starts over."""
    video, _spans = interview
    archive = tmp_path / "archive"
    proc = _run(video, archive, *base_args, start_new_session=True)
    deadline = time.monotonic() + 120
    partial = None
    while partial is None and time.monotonic() < deadline and proc.poll() is None:
        partial = next(iter(archive.glob(".work/*/audio.wav.partial")), None)
    assert partial is not None, "extraction never started"
    os.killpg(proc.pid, signal.SIGKILL)
    _finish(proc)
    assert not (partial.parent / "audio.json").exists() and _complete_looking(archive) == []

    code, out = _finish(_run(video, archive, *base_args))
    assert code == 0, out
    assert _content(archive) == uninterrupted


@pytest.mark.slow
def test_sigkill_during_translation_keeps_finished_batches(media, tiny_whisper, tmp_path):
    """Killed right after a translated batch is checkpointed: the rerun uses it instead of translating again."""
    from pipeline.cli.main import main

    assert main(["models", "import", str(build_tiny_argos_package(tmp_path / "argos", "kk", "en"))]) == 0
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "kk.mp4", lead_silence=1.0)
    args = ["--language", "kk", "--asr-model", str(tiny_whisper), *TINY_FLAGS]
    reference = tmp_path / "reference"
    assert _finish(_run(video, reference, *args))[0] == 0

    archive = tmp_path / "archive"
    code, out = _finish(_run(video, archive, *args, kill_at="translate:batch"))
    assert code == -signal.SIGKILL, out
    (checkpoint,) = archive.glob(".work/*/translate.jsonl")
    saved = checkpoint.read_text(encoding="utf-8")
    assert _complete_looking(archive) == []

    code, out = _finish(_run(video, archive, *args))
    assert code == 0, out
    resumed = _content(archive)
    assert resumed == _content(reference)
    assert resumed["segments"] and all(s["translation"] is not None for s in resumed["segments"])
    assert len(saved.splitlines()) == 1, "one batch was checkpointed before the kill"
    shutil.rmtree(tmp_path / "argos", ignore_errors=True)


@pytest.mark.slow
def test_sigkill_between_retiring_and_replacing_a_bundle_loses_nothing(media, tiny_whisper, tmp_path):
    """A forced rerun killed after the old bundle was moved aside and before the new one took its place:
    the old one is the only copy, and the next run puts it back before publishing."""
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "kk.mp4", lead_silence=1.0)
    archive = tmp_path / "archive"
    args = ["--language", "kk", "--no-translate", "--asr-model", str(tiny_whisper), *TINY_FLAGS]
    assert _finish(_run(video, archive, *args))[0] == 0
    first = _content(archive)

    code, out = _finish(_run(video, archive, *args, "--force", kill_at="publish:retired"))
    assert code == -signal.SIGKILL, out
    assert _complete_looking(archive) == [] and len(list(archive.glob(".*.old-*"))) == 1

    code, out = _finish(_run(video, archive, *args, kill_at="publish:begin"))  # killed again, before publishing
    assert code == -signal.SIGKILL, out
    assert _content(archive) == first, "the retired bundle is back in place first"
    code, out = _finish(_run(video, archive, *args))
    assert code == 0, out
    assert _content(archive) == first and not list(archive.glob(".*.old-*"))
