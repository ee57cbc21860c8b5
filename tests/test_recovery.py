"""Crash windows recovered, and `verify` that reads only.

A real SIGKILL (`pipeline/failpoints.py`) lands between work that is done and its custody line: after a
review save's rename, after a run's publish, after an original is copied into the archive. The next save,
run, export or `testimony repair` logs what landed (with `recovered`), and `verify` then passes. `verify`
itself changes no byte of the archive, and works on a read-only mount of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.archive import catalog, custody, originals
from pipeline.archive.bundle import find_bundle
from pipeline.review import revisions
from pipeline.run import process

from .test_review import SHA, _transcript


def _cli(*args: str, kill_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "TESTIMONY_KILL_AT": kill_at}
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _hashes(root: Path) -> dict[str, str]:
    """Every file under `root` (symlinks as their target's name) -> its SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _killed_save(archive: Path, point: str = "publish:renamed", text: str = "killed after the rename") -> None:
    """A review save in its own process, SIGKILLed at `point`."""
    script = ("from pathlib import Path; from pipeline.review import revisions; "
              "from pipeline.review.save import save_revision; from pipeline.archive.bundle import find_bundle\n"
              f"b = find_bundle(Path({str(archive)!r}), {SHA!r}); r = revisions.newest(b)\n"
              f"segs = [dict(s) for s in r.segments]; segs[0]['text'] = {text!r}\n"
              f"save_revision(b.parent, {SHA!r}, base=r.sha256, author='K', segments=segs)\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TESTIMONY_KILL_AT": point})
    assert done.returncode == -signal.SIGKILL


@pytest.fixture
def reviewed(tmp_path) -> Path:
    """An archive whose one bundle was published and logged as a run does it (no Whisper)."""
    archive = tmp_path / "archive"
    process.publish_transcript(archive, _transcript())
    catalog.index_bundle(archive, find_bundle(archive, SHA))
    return archive


def test_a_save_killed_after_its_rename_is_logged_by_repair(reviewed):
    _killed_save(reviewed)
    bundle = find_bundle(reviewed, SHA)
    assert revisions.newest(bundle).number == 1, "the rename is the save"
    assert "revise" not in [e["event"] for e in custody.read(reviewed, SHA)], "killed before its custody line"

    before = _hashes(reviewed)
    verify = _cli("verify", "--out", str(reviewed))
    assert verify.returncode == 1
    assert "revisions/0001.json: not the revision custody logged (none logged" in verify.stdout
    assert "testimony repair" in verify.stdout
    assert _hashes(reviewed) == before, "verify changed nothing"

    repair = _cli("repair", "--out", str(reviewed))
    assert repair.returncode == 0 and "revision 1 of" in repair.stdout, repair.stdout + repair.stderr
    revise = [e for e in custody.read(reviewed, SHA) if e["event"] == "revise"]
    assert len(revise) == 1 and revise[0]["revision"] == 1 and revise[0]["recovered"]
    assert revise[0]["revision_sha256"] == revisions.newest(bundle).sha256 and revise[0]["author"] == "K"
    verify = _cli("verify", SHA[:12], "--out", str(reviewed))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = _cli("repair", "--out", str(reviewed))
    assert again.returncode == 0 and again.stdout == "" and "0 repair(s)" in again.stderr


def test_the_next_save_and_an_export_log_a_killed_save_first(reviewed, tmp_path):
    _killed_save(reviewed)
    _killed_save(reviewed, "revise:begin", "never written")  # a second save, killed before it publishes
    from .test_review import _edit

    saved = _edit(reviewed, s1={"text": "saved after the kill"})
    assert saved.revision.number == 2
    revise = [e for e in custody.read(reviewed, SHA) if e["event"] == "revise"]
    assert [(e["revision"], bool(e.get("recovered"))) for e in revise] == [(1, True), (2, False)]
    assert _cli("verify", "--out", str(reviewed)).returncode == 0

    _killed_save(reviewed, text="killed once more")
    export = _cli("export", SHA[:12], "-o", str(tmp_path / "e.zip"), "--out", str(reviewed))
    assert export.returncode == 0, export.stdout + export.stderr
    assert "repaired: " in export.stderr and "revision 3" in export.stderr
    assert [e["event"] for e in custody.read(reviewed, SHA)][-2:] == ["revise", "export"]


def test_a_changed_revision_is_not_logged_by_repair(reviewed):
    _killed_save(reviewed)
    bundle = find_bundle(reviewed, SHA)
    (bundle / "kk.txt").write_text("changed after the kill\n", encoding="utf-8")
    repair = _cli("repair", "--out", str(reviewed))
    assert repair.returncode == 0 and repair.stdout == ""
    verify = _cli("verify", "--out", str(reviewed))
    assert verify.returncode == 1 and "kk.txt: changed" in verify.stdout and "none logged" in verify.stdout


def test_a_retired_bundle_is_reported_by_verify_and_put_back_by_repair(reviewed):
    _killed_save(reviewed, "publish:retired")
    assert find_bundle(reviewed, SHA) is None
    before = _hashes(reviewed)
    verify = _cli("verify", "--out", str(reviewed))
    assert verify.returncode == 1 and ".old-" in verify.stdout and "testimony repair" in verify.stdout
    assert _hashes(reviewed) == before
    repair = _cli("repair", "--out", str(reviewed))
    assert repair.returncode == 0 and "put back" in repair.stdout, repair.stdout + repair.stderr
    assert [e["repaired"] for e in custody.read(reviewed, SHA) if e["event"] == "repair"] == ["retired-bundle-restored"]
    assert _cli("verify", "--out", str(reviewed)).returncode == 0


# --- real runs ---------------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_original_copied_but_not_logged_is_logged_by_the_next_run(video, run_args, tmp_path):
    archive, sha = tmp_path / "archive", _sha(video)
    killed = _cli("run", str(video), "--out", str(archive), *run_args, kill_at="preserve:copied")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    kept = originals.find_kept(archive, sha)
    assert kept is not None and _sha(kept) == sha
    assert custody.preserved_paths(archive, sha) == [], "killed before its custody line"

    done = _cli("run", str(video), "--out", str(archive), *run_args)
    assert done.returncode == 0, done.stdout + done.stderr
    preserve = [e for e in custody.read(archive, sha) if e.get("name") == "preserve"]
    assert len(preserve) == 1 and preserve[0]["recovered"] and Path(preserve[0]["path"]).name == kept.name
    verify = _cli("verify", "--out", str(archive))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_an_unlogged_original_is_logged_by_repair_and_a_changed_one_refused(video, run_args, tmp_path):
    archive, sha = tmp_path / "archive", _sha(video)
    assert _cli("run", str(video), "--out", str(archive), *run_args, kill_at="preserve:copied").returncode < 0
    repair = _cli("repair", "--out", str(archive))
    assert repair.returncode == 0 and "re-hashed, logged" in repair.stdout, repair.stdout + repair.stderr
    assert custody.preserved_paths(archive, sha) and custody.check_chain(archive, sha) == []

    other = tmp_path / "other"
    assert _cli("run", str(video), "--out", str(other), *run_args, kill_at="preserve:copied").returncode < 0
    kept = originals.find_kept(other, sha)
    os.chmod(kept, 0o600)
    with open(kept, "ab") as f:
        f.write(b"\0")
    done = _cli("run", str(video), "--out", str(other), *run_args)
    assert done.returncode == 1 and "not the video it is named by" in done.stdout + done.stderr
    assert custody.preserved_paths(other, sha) == [], "a changed copy is never logged as the original"


def test_a_first_run_killed_after_publishing_is_logged_by_the_next_run(video, run_args, tmp_path):
    archive, sha = tmp_path / "archive", _sha(video)
    killed = _cli("run", str(video), "--out", str(archive), *run_args, kill_at="publish:renamed")
    assert killed.returncode == -signal.SIGKILL and find_bundle(archive, sha) is not None
    assert _cli("run", str(video), "--out", str(archive), *run_args).returncode == 0
    events = custody.read(archive, sha)
    assert [e["event"] for e in events[-2:]] == ["stage", "reused"] and events[-2]["recovered"]
    assert _cli("verify", "--out", str(archive)).returncode == 0


def test_a_run_killed_after_publishing_is_logged_by_repair(video, run_args, tmp_path):
    archive, sha = tmp_path / "archive", _sha(video)
    assert _cli("run", str(video), "--out", str(archive), *run_args).returncode == 0
    killed = _cli("run", str(video), "--out", str(archive), *run_args, "--force", kill_at="publish:renamed")
    assert killed.returncode == -signal.SIGKILL
    verify = _cli("verify", "--out", str(archive))
    assert verify.returncode == 1 and "manifest.json: changed since publishing" in verify.stdout
    repair = _cli("repair", "--out", str(archive))
    assert repair.returncode == 0 and "the publish of" in repair.stdout, repair.stdout + repair.stderr
    assert custody.read(archive, sha)[-1]["recovered"]
    assert _cli("verify", "--out", str(archive)).returncode == 0

    bundle = find_bundle(archive, sha)
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text() + " ")  # rewritten by hand: never taken for a killed publish
    assert _cli("repair", "--out", str(archive)).stdout == ""
    assert _cli("verify", "--out", str(archive)).returncode == 1


# --- verify reads only -------------------------------------------------------------------------

@pytest.fixture
def read_only(tmp_path):
    """A read-only bind mount of a folder (mounting needs root, as CI has; root ignores chmod)."""
    mounted: list[Path] = []

    def mount(source: Path) -> Path:
        target = tmp_path / "read-only"
        target.mkdir()
        for args in (["--bind", str(source), str(target)], ["-o", "remount,ro,bind", str(target)]):
            done = subprocess.run(["mount", *args], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot bind-mount read-only here ({done.stderr.strip()})")
            mounted.append(target)
        return target

    yield mount
    if mounted:
        subprocess.run(["umount", str(mounted[0])], check=False)


def test_verify_changes_no_byte_and_reads_a_read_only_copy(video, run_args, tmp_path, read_only):
    archive, sha = tmp_path / "archive", _sha(video)
    assert _cli("run", str(video), "--out", str(archive), *run_args).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy, symlinks=True)
    before = _hashes(copy)
    for args in ([], [sha[:12]], [video.name], [str(video)]):
        verify = _cli("verify", *args, "--out", str(copy))
        assert verify.returncode == 0, verify.stdout + verify.stderr
    assert _hashes(copy) == before, "verify changed no byte"
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in archive.iterdir())

    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
        target = copy
    else:
        target = read_only(copy)
    verify = _cli("verify", sha[:12], "--out", str(target))
    assert verify.returncode == 0 and verify.stdout.endswith(": ok\n"), verify.stdout + verify.stderr
    subprocess.run(["chmod", "-R", "u+w", str(copy)], check=False)
