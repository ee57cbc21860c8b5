"""Redacted public exports: listed names gone from every public file (inflected forms too), their words
muted in the media, nothing leading back to the witness, and the private record that verifies.

The media case runs real Whisper base on espeak-ng English that says a name twice, exports the video
with the name muted, and has base transcribe the public video again: the name must not be heard.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from pipeline.archive import catalog, custody
from pipeline.archive.bundle import find_bundle
from pipeline.archive.public import public_records
from pipeline.archive.redact import MARK, RedactList, match_spans, redact_text
from pipeline.cli.main import main
from pipeline.run import process
from pipeline.stages.media import ffmpeg_binary, ffprobe_binary
from pipeline.transcript import Segment, Source, Transcript, Word

from . import media_factory as mf
from .test_viewer import Opened, wait_js

SHA = hashlib.sha256(b"a redacted testimony").hexdigest()
KK_LIST = "Тұрсынай Әлімова\nҒұлжа\nتۇرسۇناي\nАл\n"


def _list(tmp_path: Path, text: str) -> RedactList:
    path = tmp_path / "names.txt"
    path.write_text(text, encoding="utf-8")
    return RedactList.read(path)


def test_names_match_in_any_script_case_and_inflection(tmp_path):
    names = _list(tmp_path, KK_LIST)
    assert redact_text("Тұрсынай Әлімованың інісі Ғұлжада тұрады", names) == f"{MARK} інісі {MARK} тұрады"
    assert redact_text("ТҰРСЫНАЙ ӘЛІМОВА келді", names) == f"{MARK} келді"
    assert redact_text("مېنىڭ سىڭلىم تۇرسۇناينىڭ", names) == f"مېنىڭ سىڭلىم {MARK}"
    assert redact_text("تۇرسُۇناي", names) == MARK  # a harakat inside the word: folded as search folds it
    assert redact_text("Алматыда Ал келді", names) == f"Алматыда {MARK} келді"  # two letters: whole words only
    assert match_spans("Тұрсынай жалғыз", names) == []  # half of a two-word name is not the name


def test_a_list_that_names_nothing_or_is_not_text_is_refused(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("# only a comment\n\n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00names")
    archive = _archive(tmp_path / "archive")
    for bad in ("empty.txt", "binary.txt", "missing.txt"):
        code = main(["export", SHA[:12], "--out", str(archive), "--redact", str(tmp_path / bad),
                     "-o", str(tmp_path / "public")])
        assert code == 2 and bad in capsys.readouterr().err
    assert not (tmp_path / "public").exists()
    assert main(["export", SHA[:12], "--out", str(archive), "--media", "audio", "-o", str(tmp_path / "p")]) == 2
    assert main(["export", SHA[:12], "--out", str(archive), "--redact", str(tmp_path / "empty.txt"),
                 "--with-original", "-o", str(tmp_path / "p")]) == 2


def _kazakh() -> Transcript:
    words = [Word(0.5, 1.1, " Тұрсынай", 0.9), Word(1.1, 1.7, " Әлімованың", 0.8), Word(1.7, 2.4, " інісі", 0.9)]
    segments = [
        Segment(0, 0.5, 2.4, "Тұрсынай Әлімованың інісі", "Tursynai Alimova's brother", -0.3, 0.1, 1.2, [],
                words, 0.0, speaker="S2", english_source="machine"),
        Segment(1, 3.0, 5.0, "Ол Ғұлжада ұсталды", "He was detained in Ghulja", -0.4, 0.1, 1.1, [], None, 0.0,
                speaker="S1", english_source="machine"),
        Segment(2, 6.0, 8.0, "Екі жыл болды", "It has been two years", -0.4, 0.1, 1.0, [], None, 0.0,
                english_source="machine", suggestions=[{"heard": "Ғұлжа", "glossary": "Ғұлжа"}]),
    ]
    sidecar = {"file_name": "Tursynai Alimova.mp4.json", "sha256": "1" * 64,
               "content": {"speaker_names": {"S1": "Interviewer", "S2": "Тұрсынай Әлімова"}, "place": "Almaty"}}
    return Transcript(Source("Tursynai Alimova.mp4", SHA, 1000, 9.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base", "path": "/home/aigul/models/base.pt"}, "options_key": "k"},
                      segments, created="2026-12-01T00:00:00+00:00", sidecar=sidecar)


def _archive(root: Path) -> Path:
    process.publish_transcript(root, _kazakh())
    catalog.index_bundle(root, find_bundle(root, SHA))
    return root


def _public_text(folder: Path) -> str:
    """Every public file's bytes as text, folded as the matcher folds them."""
    from pipeline.archive.catalog import fold

    return "\n".join(fold(p.read_bytes().decode("utf-8", "replace")).casefold() for p in sorted(folder.iterdir()))


def test_a_public_bundle_holds_no_name_and_the_archive_records_what_was_removed(tmp_path, capsys):
    archive = _archive(tmp_path / "archive")
    (tmp_path / "names.txt").write_text(KK_LIST + "Tursynai Alimova\nGhulja\n", encoding="utf-8")
    public = tmp_path / "public"
    assert main(["export", SHA[:12], "--out", str(archive), "--redact", str(tmp_path / "names.txt"),
                 "-o", str(public)]) == 0
    text = _public_text(public)
    for gone in ("тұрсынай", "әлімова", "ғұлжа", "tursynai", "alimova", "ghulja", SHA, SHA[:12], "almaty",
                 "/home/aigul", "custody"):
        assert gone not in text, gone
    data = json.loads((public / "transcript.json").read_text(encoding="utf-8"))
    assert [s["text"] for s in data["segments"]] == [f"{MARK} інісі", f"Ол {MARK} ұсталды", "Екі жыл болды"]
    assert data["segments"][2]["translation"] == "It has been two years"  # the rest is unchanged
    assert "source_sha256" not in (public / "manifest.json").read_text(encoding="utf-8")
    assert f"{MARK}: {MARK} інісі" in (public / "kk.srt").read_text(encoding="utf-8")  # the named speaker too
    assert sorted(p.name for p in public.iterdir()) == sorted(
        ["transcript.json", "kk.srt", "kk.vtt", "kk.txt", "en.srt", "en.vtt", "en.txt", "kk-en.srt", "kk-en.vtt",
         "index.html", "manifest.json"])

    record = public_records(archive, SHA)[-1]
    assert record["changed_segments"] == [0, 1]
    assert record["redact_list_sha256"] == hashlib.sha256((tmp_path / "names.txt").read_bytes()).hexdigest()
    assert record["muted"] == [[0.35, 1.85], [3.0, 5.0]]  # matched words by their times; untimed: the segment
    capsys.readouterr()
    assert main(["verify", SHA[:12], "--out", str(archive), "--public", str(public)]) == 0
    (public / "en.txt").write_text("Tursynai Alimova's brother\n", encoding="utf-8")
    assert main(["verify", SHA[:12], "--out", str(archive), "--public", str(public)]) == 1
    assert "public/en.txt: changed or missing" in capsys.readouterr().out
    assert custody.check_chain(archive, SHA) == []


def test_the_same_list_gives_the_same_public_folder(tmp_path):
    archive = _archive(tmp_path / "archive")
    (tmp_path / "names.txt").write_text(KK_LIST, encoding="utf-8")
    for out in ("one", "two"):
        assert main(["export", SHA[:12], "--out", str(archive), "--redact", str(tmp_path / "names.txt"),
                     "-o", str(tmp_path / out)]) == 0
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (tmp_path / "two" / "manifest.json").read_bytes()
    assert main(["export", SHA[:12], "--out", str(archive), "--redact", str(tmp_path / "names.txt"),
                 "-o", str(tmp_path / "one")]) == 2  # never over an existing folder


def _volume(path: Path, start: float, end: float) -> float:
    """Peak level in dB of `path`'s audio between two times (ffmpeg's volumedetect)."""
    done = subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-ss", f"{start:.3f}", "-to", f"{end:.3f}",
                           "-i", str(path), "-vn", "-af", "volumedetect", "-f", "null", "-"],
                          capture_output=True, text=True, check=True)
    peak = [line for line in done.stderr.splitlines() if "max_volume" in line]
    return float(peak[-1].split("max_volume:")[1].split("dB")[0]) if peak else -200.0


def _tags(path: Path) -> str:
    return subprocess.run([ffprobe_binary(), "-v", "error", "-show_entries", "format_tags:stream_tags",
                           "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_exported_video_has_the_name_muted_and_no_tags(tmp_path, converted_base, browser):
    speech = mf.speak("My brother was taken to the camp in the spring. His name is David Miller. "
                      "We have not heard from David Miller since that day.", "en", tmp_path / "speech.wav")
    video = mf.video_from_audio(speech, tmp_path / "David Miller testimony.mp4", tail_silence=0.5,
                                extra=("-metadata", "title=Testimony of David Miller"))
    archive = tmp_path / "archive"
    run = ["run", str(video), "--out", str(archive), "--language", "en", "--asr-model", str(converted_base)]
    assert main(run) == 0
    (tmp_path / "names.txt").write_text("David Miller\n", encoding="utf-8")
    public = tmp_path / "public"
    assert main(["export", "David Miller testimony.mp4", "--out", str(archive), "--redact",
                 str(tmp_path / "names.txt"), "--media", "video", "-o", str(public)]) == 0

    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    muted = public_records(archive, sha)[-1]["muted"]
    assert len(muted) == 2  # each time the name is said
    for start, end in muted:
        assert _volume(video, start, end) > -40  # speech there in the original
        assert _volume(public / "video.mp4", start + 0.05, end - 0.05) < -60  # silence in the public copy
    assert _volume(public / "video.mp4", 0.2, muted[0][0] - 0.3) > -40  # the rest still speaks
    assert "david" not in _tags(public / "video.mp4").lower() and "david" not in _public_text(public)

    page = Opened(browser, public / "index.html")  # the public viewer plays the muted copy, offline
    wait_js(page.page, "document.getElementById('video').readyState >= 1", timeout_ms=15000)
    shown = page.page.inner_text("body")
    assert shown.count(MARK) == 2 and "David" not in shown and "brother" in shown
    page.close()

    heard = tmp_path / "heard"
    assert main(["run", str(public / "video.mp4"), "--out", str(heard), "--language", "en", "--no-translate",
                 "--asr-model", str(converted_base)]) == 0
    again = " ".join(s["text"] for s in json.loads(next(heard.glob("*/transcript.json")).read_text())["segments"])
    assert "brother" in again.lower() and "david" not in again.lower() and "miller" not in again.lower()
