"""Abandoned work folders (witness audio a failed run left) go after a stated age, logged in custody;
a folder touched recently stays."""

from __future__ import annotations

import hashlib
import os
import time

from pipeline.archive import custody
from pipeline.cli.main import main


def _work(archive, name: str, days_old: float):
    sha = hashlib.sha256(name.encode()).hexdigest()
    custody.append(archive, sha, "arrival", path=f"/inbox/{name}")
    folder = archive / ".work" / sha[:12]
    folder.mkdir(parents=True)
    (folder / "audio.wav").write_bytes(b"RIFF witness audio")
    then = time.time() - days_old * 86400
    for path in (folder / "audio.wav", folder):
        os.utime(path, (then, then))
    return sha, folder


def test_clean_removes_only_what_was_left_for_long(tmp_path, capsys):
    archive = tmp_path / "archive"
    old_sha, old = _work(archive, "failed long ago.mp4", 8)
    _new_sha, new = _work(archive, "failed an hour ago.mp4", 0.05)
    assert main(["clean", "--out", str(archive)]) == 0
    assert not old.exists() and new.exists()
    assert f"removed {old}" in capsys.readouterr().out
    logged = [e for e in custody.read(archive, old_sha) if e.get("name") == "clean"]
    assert logged and logged[0]["removed"] == str(old) and logged[0]["idle_days"] >= 8

    assert main(["clean", "--out", str(archive), "--older-than", "0"]) == 0
    assert not new.exists() and not (archive / ".work").exists(), "an empty .work/ goes too"
    assert main(["clean", "--out", str(archive), "--older-than", "-1"]) == 2
