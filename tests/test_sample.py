"""`testimony sample` makes README's two sample videos from an installed package (bin/make-sample calls
it), and a missing speech source is named in one line with its install command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.stages.media import ffmpeg_binary, probe

REPO = Path(__file__).resolve().parent.parent


def _sample(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "sample", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True,
                          timeout=300)


def test_sample_makes_an_english_and_a_kazakh_interview(tmp_path):
    done = _sample([], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["sample/interview-en.mp4", "sample/interview-kk.mp4"]
    english, kazakh = probe(tmp_path / "sample" / "interview-en.mp4"), probe(tmp_path / "sample" / "interview-kk.mp4")
    assert round(english.duration) == 22 and round(kazakh.duration) == 9  # speech after quiet
    assert english.audio and kazakh.audio
    made = subprocess.run([str(REPO / "bin" / "make-sample"), str(tmp_path / "again")], cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0 and len(list((tmp_path / "again").glob("interview-*.mp4"))) == 2, made.stderr


def test_sample_names_a_missing_speech_source(tmp_path):
    bare = tmp_path / "bin"  # ffmpeg only: espeak-ng is not on this PATH
    bare.mkdir()
    os.symlink(ffmpeg_binary(), bare / "ffmpeg")
    done = _sample([str(tmp_path / "out")], tmp_path, PATH=str(bare))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "`apt install espeak-ng`" in done.stderr and not (tmp_path / "out").exists()
