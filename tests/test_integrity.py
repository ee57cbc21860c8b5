"""Custody log, `testimony verify` and `testimony export` on real runs, real bundles and real sha256sum."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from pipeline.archive import custody, originals
from pipeline.archive.bundle import write_bundle
from pipeline.cli.main import main

from . import media_factory as mf
from .test_catalog import EN, KK, transcript
from .test_pipeline import TINY_FLAGS


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_archive(media, tiny_whisper, tmp_path, capsys) -> tuple[Path, Path, Path]:
    """(archive, bundle, video): one real run of the CLI on the tiny random model."""
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "Куә сөзі.mp4")
    archive = tmp_path / "archive"
    assert main(["run", str(video), "--out", str(archive), "--language", "kk",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.splitlines()[0].split("\t")[0])
    return archive, bundle, video


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_custody_log_with_a_valid_chain(run_archive, tiny_whisper, capsys):
    archive, bundle, video = run_archive
    sha = _sha(video)
    log = custody.log_path(archive, sha)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    events = custody.read(archive, sha)
    assert [e["event"] for e in events] == ["arrival", "stage", "stage", "stage", "stage", "stage", "stage"]
    arrival = events[0]
    assert arrival["path"] == str(video.resolve()) and arrival["file_name"] == "Куә сөзі.mp4"
    assert arrival["size"] == video.stat().st_size and arrival["sha256"] == sha
    stages = {e["name"]: e for e in events[1:]}
    assert list(stages) == ["preserve", "extract", "transcribe", "diarize", "translate", "publish"]
    kept = Path(stages["preserve"]["path"])
    assert kept.parent == archive / "originals" and stages["preserve"]["mode"] == "0o400"
    assert _sha(kept) == sha and kept.read_bytes() == video.read_bytes()
    assert stages["translate"]["model"] is None, "no kk->en package: recorded as untranslated"
    assert stages["extract"]["tool"] == "ffmpeg" and stages["extract"]["input_sha256"] == sha
    assert len(stages["extract"]["output_sha256"]) == 64
    assert stages["transcribe"]["tool"] == "openai-whisper" and stages["transcribe"]["version"]
    assert stages["diarize"]["model"]["name"] == "resemblyzer" and len(stages["diarize"]["model"]["sha256"]) == 64
    assert stages["publish"]["manifest_sha256"] == _sha(bundle / "manifest.json")
    assert all(e["time"].endswith("+00:00") for e in events)
    assert events[0]["prev"] == "0" * 64
    assert custody.check_chain(archive, sha) == []

    assert main(["run", str(video), "--out", str(archive), "--language", "kk",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS]) == 0
    assert [e["event"] for e in custody.read(archive, sha)][-2:] == ["arrival", "reused"]
    assert custody.check_chain(archive, sha) == []


def test_editing_an_earlier_line_is_detected(run_archive):
    archive, _bundle, video = run_archive
    sha = _sha(video)
    log = custody.log_path(archive, sha)
    lines = log.read_bytes().splitlines(keepends=True)
    first = json.loads(lines[0])
    first["path"] = "/somewhere/else.mp4"
    lines[0] = (json.dumps(first) + "\n").encode()
    log.write_bytes(b"".join(lines))
    problems = custody.check_chain(archive, sha)
    assert len(problems) == 1 and "line 2" in problems[0]

    log.write_bytes(b"".join(lines[:1] + lines[2:]))  # a line removed
    assert any("line 2" in p for p in custody.check_chain(archive, sha))


def test_verify_detects_changed_missing_and_extra_files(run_archive, capsys):
    archive, bundle, video = run_archive
    log = custody.log_path(archive, _sha(video)).read_bytes()
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 0 and out == f"{bundle.name}: ok\n"

    srt = next(bundle.glob("*.srt"))
    data = bytearray(srt.read_bytes())
    data[0] ^= 1
    srt.write_bytes(bytes(data))
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and out.splitlines() == [f"{bundle.name}/{srt.name}: changed (manifest sha256 "
                                              f"{json.loads((bundle / 'manifest.json').read_text())['files'][srt.name]}"
                                              f", now {_sha(srt)})"]

    (bundle / "index.html").unlink()
    (bundle / "notes.txt").write_text("added later\n")
    code, out, _ = cli(capsys, "verify", _sha(video)[:12], "--out", str(archive))
    assert code == 1
    assert f"{bundle.name}/index.html: missing" in out.splitlines()
    assert f"{bundle.name}/notes.txt: extra file, not in the manifest" in out.splitlines()
    assert custody.log_path(archive, _sha(video)).read_bytes() == log, "verify reads only: no event logged"
    assert custody.check_chain(archive, _sha(video)) == []


def test_verify_detects_a_rewritten_manifest(run_archive, capsys):
    archive, bundle, _video = run_archive
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text() + " ")
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and out.startswith(f"{bundle.name}/manifest.json: changed since publishing")


def test_verify_rehashes_the_kept_original(run_archive, tmp_path, capsys):
    archive, bundle, video = run_archive
    sha = _sha(video)
    kept = originals.find_kept(archive, sha)
    keep = shutil.copy(video, tmp_path / "keep.mp4")
    with open(video, "ab") as f:
        f.write(b"\0")
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 0 and out == f"{bundle.name}: ok\n", "the archive's copy is the evidence, not the inbox file"
    kept.chmod(0o600)
    with open(kept, "ab") as f:
        f.write(b"\0")
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and out.startswith(f"{bundle.name}: original {kept}: changed")
    code, out, _ = cli(capsys, "verify", sha[:12], "--out", str(archive), "--original", str(keep))
    assert code == 0 and out == f"{bundle.name}: ok\n"
    code, out, _ = cli(capsys, "verify", str(keep), "--out", str(archive))  # the video file names itself
    assert code == 0 and out == f"{bundle.name}: ok\n"
    kept.unlink()
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and "the archive's copy of the original" in out and "missing" in out


def test_referenced_original_is_rehashed_where_it_arrived(media, tiny_whisper, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TESTIMONY_ORIGINALS", "reference")
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "in place.mp4")
    archive = tmp_path / "archive"
    assert main(["run", str(video), "--out", str(archive), "--language", "kk", "--no-translate",
                 "--asr-model", str(tiny_whisper), *TINY_FLAGS]) == 0
    bundle = Path(capsys.readouterr().out.splitlines()[0].split("\t")[0])
    sha = _sha(video)
    assert not (archive / "originals").exists()
    assert "preserve" not in [e.get("name") for e in custody.read(archive, sha)]
    with open(video, "ab") as f:
        f.write(b"\0")
    code, out, _ = cli(capsys, "verify", "--out", str(archive))
    assert code == 1 and out.startswith(f"{bundle.name}: original {video.resolve()}: changed")
    video.unlink()
    code, out, err = cli(capsys, "verify", "--out", str(archive))
    assert code == 0 and "original not reachable" in err
    assert custody.read(archive, sha)[-1]["name"] == "publish", "verify logs nothing, whatever it found"


def test_bad_originals_setting_is_refused_before_work(tiny_whisper, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TESTIMONY_ORIGINALS", "move")
    code = main(["run", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "a"), "--language", "kk",
                 "--asr-model", str(tiny_whisper)])
    assert code == 2 and "TESTIMONY_ORIGINALS" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def _unzip_and_check(zip_path: Path, where: Path) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(where)
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=where, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("with_original", [False, True])
def test_export_zip_checks_with_sha256sum(run_archive, tmp_path, capsys, with_original):
    archive, bundle, video = run_archive
    sha = _sha(video)
    dest = tmp_path / "out" / "export.zip"
    flags = ["--with-original"] if with_original else []
    code, out, err = cli(capsys, "export", sha[:12], "-o", str(dest), "--out", str(archive), *flags)
    assert code == 0, err
    assert out.strip() == str(dest) and not list(dest.parent.glob(".*partial*"))
    checked = _unzip_and_check(dest, tmp_path / "x")
    names = {line.rsplit(": ", 1)[0] for line in checked.splitlines()}
    assert {f"{bundle.name}/manifest.json", f"{bundle.name}/transcript.json", f"custody/{sha}.jsonl",
            "VERIFY.txt"} <= names
    assert ("original/Куә сөзі.mp4" in names) == with_original
    if with_original:
        assert _sha(tmp_path / "x" / "original" / "Куә сөзі.mp4") == sha
    assert "sha256sum -c SHA256SUMS" in (tmp_path / "x" / "VERIFY.txt").read_text()
    assert custody.read(archive, sha)[-1]["event"] == "export"
    assert custody.read(archive, sha)[-1]["zip_sha256"] == _sha(dest)

    code, _, err = cli(capsys, "export", sha[:12], "-o", str(dest), "--out", str(archive))
    assert code == 2 and "already exists" in err


def test_export_refuses_an_unreachable_original_and_a_broken_bundle(tmp_path, capsys):
    archive = tmp_path / "archive"
    bundle = write_bundle(archive, transcript("Куә сөзі.mp4", "kk", KK[:2], EN[:2]))
    code, out, err = cli(capsys, "verify", "--out", str(archive))
    assert code == 0 and "no custody log" in err, "a bundle made by hand has no log: noted, not failed"
    code, _, err = cli(capsys, "export", bundle.name, "-o", str(tmp_path / "e.zip"), "--out", str(archive),
                       "--with-original")
    assert code == 2 and "not reachable" in err and not (tmp_path / "e.zip").exists()
    code, _, err = cli(capsys, "export", bundle.name, "-o", str(tmp_path / "e.zip"), "--out", str(archive))
    assert code == 0, err
    _unzip_and_check(tmp_path / "e.zip", tmp_path / "x")
    (bundle / "kk.txt").write_text("changed\n")
    code, _, err = cli(capsys, "export", bundle.name, "-o", str(tmp_path / "f.zip"), "--out", str(archive))
    assert code == 2 and "kk.txt: changed" in err and not (tmp_path / "f.zip").exists()


def test_a_failed_stage_is_logged_and_reraised(media, tiny_whisper, tmp_path, monkeypatch):
    from pipeline.archive import bundle as bundle_module
    from pipeline.asr.core import AsrOptions
    from pipeline.run.process import RunOptions, process_video

    def broken(_transcript):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "renderings", broken)
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "v.mp4")
    options = RunOptions(asr=AsrOptions(model=str(tiny_whisper), language="kk", word_timestamps=False,
                                        temperatures=(0.0,)))
    with pytest.raises(OSError):
        process_video(video, tmp_path / "archive", options)
    last = custody.read(tmp_path / "archive", _sha(video))[-1]
    assert last["event"] == "failure" and last["stage"] == "publish" and "No space left" in last["error"]
