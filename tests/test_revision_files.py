"""A save writes one new revision file: the earlier ones are linked into the new bundle, never copied,
and a bundle whose revisions were written as copies (the layout before links) reads and verifies as
before and takes new saves. Real files, real custody log, real catalog."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.archive.bundle import REVISIONS, find_bundle
from pipeline.archive.integrity import export_bundle, verify_bundle
from pipeline.cli.main import main
from pipeline.review import revisions

from .test_review import SHA, _edit
from .test_review import archive as archive  # noqa: F401 (the fixture)


def _inodes(bundle: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in sorted((bundle / REVISIONS).iterdir())}


def test_a_save_writes_one_new_revision_file(archive):  # noqa: F811
    for n in range(3):
        _edit(archive, s0={"text": f"fix {n}"})
    before = _inodes(find_bundle(archive, SHA))
    saved = _edit(archive, s1={"text": "one more"})
    after = _inodes(saved.bundle)
    assert list(after) == [*before, "0004.json"]
    assert {name: after[name] for name in before} == before, "the earlier revisions are the same files"
    assert after["0004.json"] not in before.values()
    assert all((saved.bundle / REVISIONS / name).stat().st_nlink == 1 for name in after), \
        "the previous bundle's folder is gone: no file is shared with anything else"
    assert verify_bundle(archive, saved.bundle).ok
    assert [r.number for r in revisions.chain(saved.bundle)] == [0, 1, 2, 3, 4]


def test_revisions_written_as_copies_still_read_verify_and_take_saves(archive, tmp_path, capsys):  # noqa: F811
    for n in range(2):
        _edit(archive, s0={"text": f"fix {n}"})
    bundle = find_bundle(archive, SHA)
    for path in (bundle / REVISIONS).iterdir():  # as the code before links left them: each its own copy
        copy = path.with_name(path.name + ".copy")
        shutil.copy2(path, copy)
        os.replace(copy, path)
    assert verify_bundle(archive, bundle).ok
    assert main(["history", SHA[:12], "--out", str(archive)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3

    copies = _inodes(bundle)
    saved = _edit(archive, s2={"text": "after the upgrade"})
    assert _inodes(saved.bundle) == {**copies, "0003.json": _inodes(saved.bundle)["0003.json"]}
    assert verify_bundle(archive, saved.bundle).ok
    chain = revisions.chain(saved.bundle)
    assert chain[3].parent == chain[2].sha256 and chain[3].author == "Aigul"
    assert export_bundle(archive, saved.bundle, tmp_path / "out.zip").is_file()
