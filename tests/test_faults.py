"""Faults of the machine, injected for real: a full disk, an archive we may not write, a damaged model.

Each ends with a clear error naming what failed and what to do, no bundle that looks complete, the
input untouched where it was, and (once the fault is fixed) a rerun that finishes from where it stopped.
The disk is a real tmpfs filled at an exact point of the run: the process stops itself there
(`TESTIMONY_STOP_AT`, SIGSTOP), the test fills the disk, then lets it go on (SIGCONT).
"""

from __future__ import annotations

import errno
import hashlib
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
from pipeline.store import registry as model_registry

from .test_flow import prefect_server  # noqa: F401  (the module's real Prefect server)
from .test_pipeline import TINY_FLAGS
from .tiny_models.argos import build_tiny_argos_package


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*args: str, env: dict | None = None, wrapper: list[str] | None = None, **popen) -> subprocess.Popen:
    cmd = [*(wrapper or []), sys.executable, "-m", "pipeline.cli.main", *args]
    return subprocess.Popen(cmd, env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def _done(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _bundles(archive: Path) -> list[Path]:
    if not archive.is_dir():
        return []
    return [p for p in archive.iterdir() if not p.name.startswith(".") and (p / "transcript.json").exists()]


def _content(archive: Path) -> dict:
    (bundle,) = _bundles(archive)
    data = json.loads((bundle / "transcript.json").read_text(encoding="utf-8"))
    data.pop("created")
    return data


# --- a full disk -------------------------------------------------------------------------------

def mounted_tmpfs(tmp_path: Path, size: str):
    """A real tmpfs of `size` (e.g. 64m) at tmp_path/disk, unmounted afterwards: a disk that really fills
    up. Mounting needs root, as CI has; elsewhere the test is skipped, saying so."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): a real full disk needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MiB tmpfs for the archive."""
    yield from mounted_tmpfs(tmp_path, "64m")


def _fill(disk: Path) -> Path:
    """Take every free byte of `disk`."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    assert shutil.disk_usage(disk).free < 4096 * 4
    return filler


def _wait_stopped(proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run never reached its stop point")


@pytest.mark.parametrize("point,stage", [
    ("preserve:begin", "preserve"),  # copying the original into the archive
    ("extract:begin", "extract"),  # ffmpeg writing the WAV
    ("asr:plan", "transcribe"),  # appending a decoded chunk to the checkpoint
    ("publish:begin", "publish"),  # writing the bundle's files
])
def test_disk_full_fails_clearly_and_the_rerun_finishes(point, stage, video, run_args, small_disk, tmp_path):
    reference = tmp_path / "reference"
    assert _done(_cli("run", str(video), "--out", str(reference), *run_args))[0] == 0
    archive, before = small_disk / "archive", _sha(video)

    proc = _cli("run", str(video), "--out", str(archive), *run_args, env=dict(os.environ, TESTIMONY_STOP_AT=point))
    _wait_stopped(proc)
    filler = _fill(small_disk)
    proc.send_signal(signal.SIGCONT)
    code, out = _done(proc)

    assert code == 1, out
    assert f"FAILED {video}" in out and "No space left on device" in out and "Traceback" not in out, out
    assert "was not changed" in out
    assert _bundles(archive) == [], "nothing half-written looks like a bundle"
    assert not [p for p in archive.iterdir() if ".partial" in p.name], "no staging folder is left"
    assert _sha(video) == before and video.exists()

    filler.unlink()
    code, out = _done(_cli("run", str(video), "--out", str(archive), *run_args))
    assert code == 0, out
    assert _content(archive) == _content(reference)
    events = [e["event"] if e["event"] != "stage" else e["name"] for e in custody.read(archive, before)]
    if stage in ("transcribe", "publish"):
        assert "resume" in events, "the extracted audio of the failed run was used again"
    assert custody.check_chain(archive, before) == []


# --- an archive we may not write ------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o000, 0o500])  # unreadable; readable but not writable
def test_archive_without_permission_fails_clearly(mode, video, run_args, tmp_path):
    """The archive folder closed to its owner. Root ignores permission bits, so the run drops the two
    capabilities that let it (setpriv), and is then refused like any user."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    archive = tmp_path / "archive"
    archive.mkdir()
    archive.chmod(mode)
    before = _sha(video)
    try:
        code, out = _done(_cli("run", str(video), "--out", str(archive), *run_args,
                               wrapper=["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]))
    finally:
        archive.chmod(0o700)
    assert code == 1, out
    assert f"FAILED {video}" in out and "Permission denied" in out and str(archive) in out, out
    assert "Traceback" not in out and "was not changed" in out
    assert list(archive.iterdir()) == [] and _sha(video) == before and video.exists()


# --- a model that fails its hash ------------------------------------------------------------------

def _flip_byte(path: Path, offset: int = -100) -> bytes:
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def test_whisper_model_failing_its_hash_is_refused(video, tiny_whisper, tmp_path):
    store = Path(os.environ["TESTIMONY_MODELS"]) / "whisper"
    store.mkdir(parents=True)
    model = Path(shutil.copy(tiny_whisper, store / "tiny-kk.pt"))
    args = ["--language", "kk", "--no-translate", "--asr-model", "tiny-kk", *TINY_FLAGS]
    first = tmp_path / "first"
    assert _done(_cli("run", str(video), "--out", str(first), *args))[0] == 0  # records its hash

    original = _flip_byte(model)
    archive, before = tmp_path / "archive", _sha(video)
    code, out = _done(_cli("run", str(video), "--out", str(archive), *args))
    assert code == 1, out
    assert "fails its SHA-256 check" in out and str(model) in out and "testimony models remove tiny-kk" in out
    assert "Traceback" not in out and _bundles(archive) == [] and _sha(video) == before
    code, out = _done(_cli("models", "verify"))
    assert code != 0 and "tiny-kk" in out

    model.write_bytes(original)
    code, out = _done(_cli("run", str(video), "--out", str(archive), *args))
    assert code == 0, out
    assert _content(archive) == _content(first)


def test_translation_package_failing_its_hash_is_refused(video, tiny_whisper, tmp_path):
    package = build_tiny_argos_package(tmp_path / "argos", "kk", "en")
    assert _done(_cli("models", "import", str(package)))[0] == 0
    (installed,) = [p for p in (Path(os.environ["TESTIMONY_MODELS"]) / "argos").iterdir() if p.is_dir()]
    _flip_byte(installed / "model" / "model.bin")
    archive = tmp_path / "archive"
    code, out = _done(_cli("run", str(video), "--out", str(archive), "--language", "kk",
                           "--asr-model", str(tiny_whisper), *TINY_FLAGS))
    assert code == 1, out
    assert "fails its SHA-256 check" in out and "model.bin" in out and installed.name in out
    assert "Traceback" not in out and _bundles(archive) == []


def test_inbox_file_stays_put_when_the_machine_fails(prefect_server, video, tiny_whisper, tmp_path):  # noqa: F811
    """Through the serve flow: a machine fault is not the file's fault, so it is not set aside as bad."""
    store = tmp_path / "models"
    (store / "whisper").mkdir(parents=True)
    model = Path(shutil.copy(tiny_whisper, store / "whisper" / "base.pt"))  # the `auto` route's model
    model_registry.write_record(model, name="base", origin="tiny random test model")
    env = dict(prefect_server["env"], TESTIMONY_MODELS=str(store))
    _flip_byte(model)
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    dropped = Path(shutil.copy(video, inbox / video.name))
    script = ("import sys; from flows.service_flows import process_inbox_file; "
              "process_inbox_file(sys.argv[1], sys.argv[2], sys.argv[3])")
    done = subprocess.run([sys.executable, "-c", script, str(dropped), str(inbox), str(archive)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert dropped.exists() and not (inbox / "failed").exists(), "left in the inbox, not set aside as bad input"
    assert "fails its SHA-256 check" in done.stdout + done.stderr
    import sqlite3

    con = sqlite3.connect(archive / "catalog.sqlite")
    (outcome,) = con.execute("SELECT outcome FROM arrivals").fetchone()
    con.close()
    assert outcome.startswith("waiting: ") and "stays in the inbox" in outcome
