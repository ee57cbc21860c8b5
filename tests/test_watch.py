"""The watch folder's choice of what to announce: videos in the inbox and its language folders, never
a folder, a sidecar or a partial download."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flows.watch import InboxWatcher


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
