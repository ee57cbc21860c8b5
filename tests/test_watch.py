"""The watch folder's choice of what to announce: videos in the inbox and its language folders, never
a folder, a sidecar or a partial download; and what the inbox flow refuses to follow."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flows.service_flows import _refusal, from_payload, set_aside, to_payload
from flows.watch import InboxWatcher
from pipeline import errors
from pipeline.run.sidecar import SidecarError, read_sidecar


def test_announces_videos_of_the_inbox_and_its_language_folders_only(tmp_path):
    inbox = tmp_path / "inbox"
    announced: list[Path] = []
    watcher = InboxWatcher(inbox, announced.append, settle_seconds=0.3, poll_seconds=0.1)
    watcher.start()
    try:
        assert (inbox / "kk").is_dir() and (inbox / "ug").is_dir(), "the language folders are made"
        (inbox / "ru").mkdir()  # a folder the user made: its files are Russian, the folder is no video
        (inbox / "other").mkdir()  # not a language: ignored
        for path in (inbox / "top.mp4", inbox / "kk" / "kazakh.mp4", inbox / "ru" / "russian.mp4",
                     inbox / "other" / "ignored.mp4", inbox / "top.mp4.json", inbox / "part.mp4.part",
                     inbox / ".hidden.mp4"):
            path.write_bytes(b"x" * 100)
        deadline = time.monotonic() + 10
        expected = {inbox / "top.mp4", inbox / "kk" / "kazakh.mp4", inbox / "ru" / "russian.mp4"}
        while {p.resolve() for p in announced} != {p.resolve() for p in expected}:
            assert time.monotonic() < deadline, announced
            time.sleep(0.1)
        time.sleep(0.6)  # nothing else comes later either
        assert sorted(map(str, announced)) == sorted(str(p.resolve()) for p in expected)
        os.utime(inbox / "top.mp4", (1_000_000, 1_000_000))  # touched: a waiting file is looked at again
        deadline = time.monotonic() + 10
        while len(announced) < 4:
            assert time.monotonic() < deadline, "a touched file is announced again"
            time.sleep(0.1)
        assert announced[-1] == (inbox / "top.mp4").resolve()
    finally:
        watcher.stop()


def test_a_name_that_is_not_utf8_is_announced_and_travels_as_its_bytes(tmp_path):
    inbox = tmp_path / "inbox"
    announced: list[Path] = []
    watcher = InboxWatcher(inbox, announced.append, settle_seconds=0.2, poll_seconds=0.1)
    watcher.start()
    try:
        raw = os.fsencode(inbox) + b"/\xff\xfe-witness.mp4"
        with open(raw, "wb") as f:
            f.write(b"x" * 100)
        deadline = time.monotonic() + 10
        while not announced:
            assert time.monotonic() < deadline, "a name that is not UTF-8 is never dropped"
            time.sleep(0.1)
    finally:
        watcher.stop()
    payload = to_payload(announced[0])
    json.dumps(payload)  # what the event carries must be JSON text
    assert os.fsencode(from_payload(payload)) == os.fsencode(inbox.resolve()) + b"/\xff\xfe-witness.mp4"
    assert from_payload(to_payload(inbox / "plain.mp4")) == inbox / "plain.mp4"


def test_processed_failed_and_planted_folders_are_never_announced(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "done").mkdir(parents=True)
    (inbox / "failed").mkdir()
    (inbox / "done" / "old.mp4").write_bytes(b"x" * 100)
    (inbox / "failed" / "bad.mp4").write_bytes(b"x" * 100)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.mp4").write_bytes(b"x" * 100)
    (inbox / "kk").symlink_to(tmp_path / "elsewhere")  # a language folder planted as a symlink
    (inbox / "new.mp4").write_bytes(b"x" * 100)
    announced: list[Path] = []
    watcher = InboxWatcher(inbox, announced.append, settle_seconds=0.2, poll_seconds=0.1)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while len(announced) < 2:
            assert time.monotonic() < deadline, announced
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        watcher.stop()
    # The planted link is announced as an entry (its run refuses it and sets the link aside); the
    # folder it points to is never listed.
    assert sorted(announced) == [inbox.resolve() / "kk", inbox.resolve() / "new.mp4"], announced


def test_failed_planted_as_a_symlink_moves_nothing_through_it(tmp_path):
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    elsewhere.mkdir()
    (inbox / "failed").symlink_to(elsewhere)
    video = inbox / "bad.mp4"
    video.write_bytes(b"not a video")
    with pytest.raises(errors.TestimonyError, match="is a symlink or a file, not a folder"):
        set_aside(video, inbox, "not a video")
    assert video.read_bytes() == b"not a video" and os.listdir(elsewhere) == []


def test_symlinks_in_the_inbox_are_refused_and_never_followed(tmp_path):
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    (outside / "video.mp4").write_bytes(b"x")
    (inbox / "link.mp4").symlink_to(outside / "video.mp4")
    (inbox / "told.mp4").write_bytes(b"x")
    (outside / "notes.json").write_text('{"language": "en"}', encoding="utf-8")
    (inbox / "told.mp4.json").symlink_to(outside / "notes.json")
    (inbox / "plain.mp4").write_bytes(b"x")
    assert _refusal(inbox / "link.mp4", inbox) == (
        "it is a symbolic link; it was not followed (copy the file itself into the inbox)", True)
    assert _refusal(inbox / "told.mp4", inbox)[0] == "its sidecar told.mp4.json is a symbolic link; it was not followed"
    assert _refusal(inbox / ".." / "outside" / "video.mp4", inbox)[1] is False
    assert _refusal(inbox / "plain.mp4", inbox) is None
    with pytest.raises(SidecarError, match="a symbolic link; a sidecar is never followed"):
        read_sidecar(inbox / "told.mp4")  # `run` on the same file: the sidecar is not followed either
    moved = set_aside(inbox / "link.mp4", inbox, "a symbolic link")
    assert moved.is_symlink() and (outside / "video.mp4").read_bytes() == b"x", "the link moved, not its target"
