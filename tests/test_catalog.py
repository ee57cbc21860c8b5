"""The archive catalog on real SQLite: list, get and search across Kazakh, Uyghur and English bundles."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest

from pipeline.archive import catalog
from pipeline.archive.bundle import write_bundle
from pipeline.cli.main import main
from pipeline.transcript import UNTRANSLATED, Segment, Source, Transcript

from . import media_factory as mf
from .test_pipeline import TINY_FLAGS

KK, UG, EN = mf.udhr("kk"), mf.udhr("ug-Arab"), mf.udhr("en")
ROOT = Path(__file__).resolve().parent.parent


def transcript(name: str, language: str, texts: list[str], translations: list[str] | None = None,
               sha256: str | None = None) -> Transcript:
    """A transcript as the pipeline writes it, without running Whisper: one UDHR line per 6 s segment."""
    sha256 = sha256 or hashlib.sha256(f"{name}/{language}".encode()).hexdigest()
    segments = []
    for n, text in enumerate(texts):
        seg = Segment(id=n, start=n * 6.0, end=n * 6.0 + 5.0, text=text,
                      translation=translations[n] if translations else None)
        if language != "en" and not translations:
            seg.flag(UNTRANSLATED)
        segments.append(seg)
    return Transcript(source=Source(file_name=name, sha256=sha256, size=1000, duration=6.0 * len(texts),
                                    audio_track={}),
                      language=language, detected_language=language, language_probability=0.9,
                      models={}, segments=segments, created="2024-05-01T10:00:00+00:00")


def add(archive: Path, t: Transcript, *, index: bool = True) -> Path:
    bundle = write_bundle(archive, t)
    if index:
        catalog.index_bundle(archive, bundle)
    return bundle


@pytest.fixture
def archive(tmp_path) -> Path:
    """Kazakh with English, Uyghur untranslated, and English speech."""
    root = tmp_path / "archive"
    add(root, transcript("Куә сөзі.mp4", "kk", KK, EN))
    add(root, transcript("ئۇيغۇر گۇۋاھچى.mp4", "ug", UG))
    add(root, transcript("interview-en.mp4", "en", EN))
    return root


def entry(archive: Path, language: str) -> catalog.Video:
    return next(v for v in catalog.list_videos(archive) if v.language == language)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---- list and the catalog file -------------------------------------------------------------------


def test_list_shows_every_video(archive, capsys):
    code, out, _ = cli(capsys, "list", "--out", str(archive))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "LANG", "DURATION", "SEGMENTS", "STATUS", "FILE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    for video in catalog.list_videos(archive):
        row = rows[video.id]
        assert row.endswith(video.file_name)
        assert row.split()[1:6] == [video.language, "0:02:00", "20", "machine", "draft"]


def test_catalog_file_is_private_and_in_wal_mode(archive):
    path = catalog.catalog_path(archive)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with catalog.connect(archive) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.execute("SELECT 1 FROM videos").fetchall()  # a reader keeps the -wal file open
        wal = Path(str(path) + "-wal")
        assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
        tokenizer = con.execute("SELECT sql FROM sqlite_master WHERE name = 'segments_fts'").fetchone()[0]
        assert "unicode61 remove_diacritics 2" in tokenizer


def test_list_on_missing_archive_is_an_error(tmp_path, capsys):
    code, _, err = cli(capsys, "list", "--out", str(tmp_path / "nowhere"))
    assert code == 2 and "no archive at" in err
    assert not (tmp_path / "nowhere").exists(), "nothing created by a typo"


# ---- get -----------------------------------------------------------------------------------------


def test_get_by_id_sha_file_name_and_folder(archive, capsys):
    kk = entry(archive, "kk")
    outputs = {key: cli(capsys, "get", key, "--out", str(archive))
               for key in (kk.id, kk.sha256, kk.sha256[:6].upper(), kk.file_name, kk.bundle,
                           f"/some/inbox/{kk.file_name}")}
    assert {code for code, _, _ in outputs.values()} == {0}
    texts = {out for _, out, _ in outputs.values()}
    assert len(texts) == 1
    text = texts.pop()  # default: txt, bilingual, one blank line between segments
    assert text.split("\n\n")[3] == f"{KK[3]}\n{EN[3]}"


def test_ambiguous_and_unknown_keys(tmp_path, capsys):
    root = tmp_path / "archive"
    first = add(root, transcript("a.mp4", "kk", KK[:2], sha256="abcd01" + "0" * 58))
    second = add(root, transcript("b.mp4", "kk", KK[:2], sha256="abcd02" + "0" * 58))
    add(root, transcript("same.mp4", "kk", KK[:1], sha256="1" * 64))
    add(root, transcript("same.mp4", "ug", UG[:1], sha256="2" * 64))

    code, _, err = cli(capsys, "get", "abcd", "--out", str(root))
    assert code == 2 and "matches 2 videos" in err
    assert "abcd01000000 a.mp4" in err and "abcd02000000 b.mp4" in err
    code, _, err = cli(capsys, "get", "same.mp4", "--out", str(root))
    assert code == 2 and "111111111111 same.mp4" in err and "222222222222 same.mp4" in err
    assert cli(capsys, "get", "abcd01", "--out", str(root))[0] == 0
    assert catalog.resolve(root, "ABCD02").bundle == second.name
    code, _, err = cli(capsys, "get", "abc", "--out", str(root))
    assert code == 2 and "too short" in err and "at least 4" in err
    code, _, err = cli(capsys, "get", "nothing-like-it.mp4", "--out", str(root))
    assert code == 2 and "no video in" in err and "testimony list" in err
    code, _, err = cli(capsys, "get", "SAME", "--out", str(root))
    assert code == 2 and "did you mean 111111111111 same.mp4; 222222222222 same.mp4?" in err
    assert catalog.resolve(root, first.name).file_name == "a.mp4"


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt"])
@pytest.mark.parametrize("lang", ["kk", "en", "kk-en"])
def test_get_every_rendering(archive, capsys, tmp_path, fmt, lang):
    kk = entry(archive, "kk")
    code, out, _ = cli(capsys, "get", kk.id, "--out", str(archive), "--format", fmt, "--lang", lang)
    assert code == 0
    stored = archive / kk.bundle / f"{lang}.{fmt}"
    if stored.exists():
        assert out == stored.read_text(encoding="utf-8"), "the bundle's own (hashed) file, unchanged"
    else:
        assert (fmt, lang) == ("txt", "kk-en")
    if lang != "en":
        assert KK[5] in out
    if lang != "kk":
        assert EN[5] in out
    saved = tmp_path / f"saved.{fmt}"
    code, again, err = cli(capsys, "get", kk.id, "--out", str(archive), "--format", fmt, "--lang", lang,
                           "-o", str(saved))
    assert code == 0 and again == "" and str(saved) in err
    assert saved.read_text(encoding="utf-8") == out


def test_get_json_and_defaults(archive, capsys):
    kk, ug, en = (entry(archive, lang) for lang in ("kk", "ug", "en"))
    code, out, _ = cli(capsys, "get", kk.id, "--out", str(archive), "--format", "json")
    assert code == 0 and out == (archive / kk.bundle / "transcript.json").read_text(encoding="utf-8")
    assert cli(capsys, "get", ug.id, "--out", str(archive))[1] == (archive / ug.bundle / "ug.txt").read_text()
    assert cli(capsys, "get", en.id, "--out", str(archive))[1] == (archive / en.bundle / "en.txt").read_text()


def test_missing_rendering_names_what_exists(archive, capsys):
    ug = entry(archive, "ug")
    for lang in ("en", "ug-en"):
        code, out, err = cli(capsys, "get", ug.id, "--out", str(archive), "--lang", lang)
        assert code == 2 and out == ""
        assert f"no '{lang}' rendering" in err and "untranslated" in err and "--lang ug" in err
    code, _, err = cli(capsys, "get", entry(archive, "en").id, "--out", str(archive), "--lang", "kk")
    assert code == 2 and "--lang en" in err


# ---- search --------------------------------------------------------------------------------------


def hits(archive: Path, query: str, lang: str | None = None) -> set[tuple[str, int]]:
    return {(h.language, h.segment) for h in catalog.search(archive, query, lang)}


def files(archive: Path, query: str) -> set[tuple[str, int]]:
    return {(h.file_name, h.segment) for h in catalog.search(archive, query)}


def where(language: str, texts: list[str], *words: str) -> set[tuple[str, int]]:
    """The segments a reader would pick by eye: every word present, ignoring case (Python's, not SQLite's)."""
    found = set()
    for n, text in enumerate(texts):
        tokens = set(re.findall(r"\w+", text.lower()))
        if all(word.lower() in tokens for word in words):
            found.add((language, n))
    return found


def test_search_kazakh_letters_and_case(archive):
    for word in ("құқылы", "әлеуметтік", "тіліне", "Барлық", "әр"):  # қ ұ ә і ы
        expected = where("kk", KK, word)
        assert expected and hits(archive, word) == expected, word
        assert hits(archive, word.upper()) == expected, "case-insensitive for Kazakh capitals"
        assert hits(archive, word.capitalize()) == expected
    assert hits(archive, "кукылы") == set(), "қ and ұ are letters of their own, not к and у"
    assert hits(archive, "тiлiне") == set(), "a Latin i is not the Kazakh і"
    assert hits(archive, "СҮРУГЕ өмір") == where("kk", KK, "өмір", "сүруге") == {("kk", 3)}, "all words, any order"
    assert hits(archive, "құқылы слава") == set()
    assert hits(archive, "қадір-қасиеті") == {("kk", 0)}, "a hyphenated query finds the words side by side"
    assert hits(archive, "құқылы*") >= where("kk", KK, "құқылы")


def test_search_uyghur_arabic_script(archive):
    for word in ("قېرىنداشلىق", "دۆلەت", "رەڭگى", "ئادەم", "ئۈچۈن", "بەھرىمەن"):  # ې ۆ ڭ ئ ۈ ھ
        expected = where("ug", UG, word)
        assert expected and hits(archive, word) == expected, word
    assert hits(archive, "ئادەم بەھرىمەن") == where("ug", UG, "ئادەم", "بەھرىمەن")
    decomposed = unicodedata.normalize("NFD", "ئادەم")
    assert decomposed != "ئادەم" and hits(archive, decomposed) == where("ug", UG, "ئادەم")
    assert hits(archive, "ئادەم\u0640") == where("ug", UG, "ئادەم"), "a tatweel does not hide the word"
    assert hits(archive, "ادەم") == where("ug", UG, "ادەم") != where("ug", UG, "ئادەم"), "hamza seat: part of the word"


def test_search_english_and_language_filters(archive):
    both = where("kk", EN, "liberty") | where("en", EN, "liberty")
    assert hits(archive, "liberty") == both == {("kk", 3), ("en", 3)}
    assert hits(archive, "LIBERTY", "en") == both, "translations and English speech"
    assert hits(archive, "liberty", "kk") == set(), "kk: original Kazakh text only"
    assert hits(archive, "құқылы", "en") == set()
    assert hits(archive, "құқылы", "kk") == where("kk", KK, "құқылы")
    assert hits(archive, "құқылы", "ug") == set()
    assert hits(archive, "ئادەم", "UG") == where("ug", UG, "ئادەم")
    assert hits(archive, "ئادەم", "kk") == set()
    assert ("kk", 4) in hits(archive, "slaver*", "en") and ("kk", 4) not in hits(archive, "slaver", "en")


def test_search_hit_fields_and_snippet(archive):
    [hit] = catalog.search(archive, "өмір", "kk")
    kk = entry(archive, "kk")
    assert (hit.id, hit.sha256, hit.file_name, hit.bundle) == (kk.id, kk.sha256, kk.file_name, kk.bundle)
    assert (hit.segment, hit.start, hit.end) == (3, 18.0, 23.0)
    assert (hit.original, hit.english) == (KK[3], EN[3])
    assert "**өмір**" in hit.snippet
    [hit] = catalog.search(archive, "liberty", "en", limit=1)
    assert hit.english == EN[3] and "**liberty**" in hit.snippet
    assert catalog.search(archive, "liberty", "kk") == []  # no Kazakh text says liberty


@pytest.mark.parametrize("query", ['"', '"құқылы', 'құқылы"', "right AND life", "NOT", "OR", "(", ")",
                                   "(right", "right*", "*", "**", "-", "right-to-life", "NEAR(right life)",
                                   "english:right", "original : right", "^right", "{english}: right",
                                   "'", "a\"b", "rank", "right OR", "\\", "%", "_", "  ", "ئادەم)"])
def test_hostile_queries_never_crash(archive, capsys, query):
    catalog.search(archive, query)
    for lang in ("en", "kk"):
        catalog.search(archive, query, lang)
    code, out, err = cli(capsys, "search", query, "--out", str(archive))
    assert code in (0, 1, 2) and "Traceback" not in err
    assert code == (0 if out else 1) or (code == 2 and "nothing to search" in err)


def test_search_cli_lines_and_exit_status(archive, capsys):
    kk = entry(archive, "kk")
    code, out, _ = cli(capsys, "search", "ӨМІР", "--out", str(archive))
    assert code == 0
    assert out == f"{kk.id}  {kk.file_name}  [0:00:18.0-0:00:23.0]  {KK[3].replace('өмір', '**өмір**')}\n"
    code, out, err = cli(capsys, "search", "лагерь", "--out", str(archive))
    assert (code, out) == (1, "") and "лагерь*" in err
    code, out, _ = cli(capsys, "search", "right", "--lang", "en", "--out", str(archive), "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2
    assert cli(capsys, "search", "()", "--out", str(archive))[0] == 2
    code, out, err = cli(capsys, "search", "түрме*", "--out", str(archive))
    assert (code, out) == (1, "") and "no match for 'түрме*'" in err, "a miss is said, not silent"


# ---- sync, arrivals, concurrency -----------------------------------------------------------------


def test_sync_finds_unindexed_bundles_and_drops_deleted_ones(archive, capsys):
    import shutil

    late = add(archive, transcript("before-the-catalog.mp4", "kk", KK[:3], EN[:3]), index=False)
    assert "before-the-catalog.mp4" not in {v.file_name for v in catalog.list_videos(archive)}
    code, out, _ = cli(capsys, "list", "--out", str(archive))
    assert code == 0 and "before-the-catalog.mp4" in out
    assert ("before-the-catalog.mp4", 0) in files(archive, "Барлық")

    ug = entry(archive, "ug")
    shutil.rmtree(archive / ug.bundle)
    assert catalog.sync(archive) == 1
    assert "ug" not in {v.language for v in catalog.list_videos(archive)}
    assert not any(lang == "ug" for lang, _ in hits(archive, "ئادەم"))
    assert catalog.sync(archive) == 0, "nothing changed, nothing redone"

    changed = transcript("before-the-catalog.mp4", "kk", ["Лагерьде болдым"], ["I was in the camp"])
    add(archive, changed, index=False)  # rewritten in place (a re-run), catalog not told
    assert catalog.sync(archive) == 1
    assert hits(archive, "лагерь*", "kk") == {("kk", 0)} and hits(archive, "camp", "en") == {("kk", 0)}
    assert ("before-the-catalog.mp4", 0) not in files(archive, "Барлық"), "the old text of that video is gone"
    assert late.exists()


def test_unreadable_bundle_is_reported_not_fatal(archive, capsys):
    broken = archive / "0123456789ab-broken"
    broken.mkdir()
    (broken / "transcript.json").write_text("{not json", encoding="utf-8")
    code, out, err = cli(capsys, "list", "--out", str(archive))
    assert code == 0 and len(out.splitlines()) == 4
    assert "0123456789ab-broken is not indexed" in err


def test_arrivals_and_failed_videos(archive, capsys):
    kk = entry(archive, "kk")
    catalog.record_arrival(archive, kk.sha256, "/inbox/Куә сөзі.mp4", "processed")
    catalog.record_arrival(archive, kk.sha256, Path("/inbox/copy.mp4"), f"duplicate-of {kk.id}")
    catalog.record_arrival(archive, "f" * 64, "/inbox/broken.mp4", "failed: not a video or audio file")
    catalog.record_arrival(archive, None, "/inbox/../etc/passwd", "refused: outside the inbox")
    rows = catalog.list_arrivals(archive)
    assert [(r["file_name"], r["outcome"]) for r in rows] == [
        ("Куә сөзі.mp4", "processed"), ("copy.mp4", f"duplicate-of {kk.id}"),
        ("broken.mp4", "failed: not a video or audio file"), ("passwd", "refused: outside the inbox")]
    assert all(r["arrived_at"] for r in rows) and rows[3]["sha256"] is None
    code, out, _ = cli(capsys, "list", "--out", str(archive))
    assert any(line.split()[0] == "f" * 12 and "failed" in line and line.endswith("broken.mp4")
               for line in out.splitlines())
    code, _, err = cli(capsys, "get", "f" * 12, "--out", str(archive))
    assert code == 2 and "has no transcript" in err
    assert entry(archive, "kk").status == "done", "a duplicate never changes the first video"


WRITER = textwrap.dedent("""
    import sys
    import time
    from pathlib import Path
    from pipeline.archive import catalog
    archive = Path(sys.argv[1])
    while not (archive.parent / "go").exists():  # start together: both race to create the catalog
        time.sleep(0.005)
    for _ in range(3):
        for bundle in sys.argv[2:]:
            catalog.index_bundle(archive, Path(bundle))
            catalog.record_arrival(archive, None, bundle, "processed")
        catalog.sync(archive)
""")


def test_two_processes_write_at_once(tmp_path):
    root = tmp_path / "archive"
    bundles = [add(root, transcript(f"v{n}.mp4", "kk", KK[:8], EN[:8]), index=False) for n in range(24)]
    assert not catalog.catalog_path(root).exists(), "both race to create the catalog too"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), *map(str, half)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for half in (bundles[0::2], bundles[1::2])]
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert len(catalog.list_videos(root)) == 24
    assert len(catalog.list_arrivals(root)) == 24 * 3
    assert len(catalog.search(root, "құқылы", "kk", limit=None)) == 24 * len(where("kk", KK[:8], "құқылы"))


def test_catalog_failure_leaves_bundle_and_a_warning(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    catalog.catalog_path(root).mkdir()  # something in the way: SQLite cannot open it
    bundle = write_bundle(root, transcript("x.mp4", "kk", KK[:1]))
    [warning] = catalog.index_or_warn(root, bundle)
    assert "testimony list" in warning and (bundle / "transcript.json").exists()
    with pytest.raises(sqlite3.Error):
        catalog.index_bundle(root, bundle)


# ---- through the real pipeline -------------------------------------------------------------------


def test_run_indexes_the_bundle(media, tiny_whisper, tmp_path, capsys):
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "Куә сөзі 1.mp4")
    root = tmp_path / "archive"
    catalog.catalog_path(root).mkdir(parents=True)  # first run: the catalog cannot be written
    code, out, err = cli(capsys, "run", str(video), "--out", str(root), "--language", "kk",
                         "--asr-model", str(tiny_whisper), "--no-translate", *TINY_FLAGS)
    assert code == 0 and out.endswith("\tdone\n")
    assert "archive catalog could not be updated" in err and "testimony list" in err
    bundle = Path(out.split("\t")[0])
    assert (bundle / "transcript.json").exists(), "the bundle is kept"

    catalog.catalog_path(root).rmdir()
    code, out, err = cli(capsys, "run", str(video), "--out", str(root), "--language", "kk",
                         "--asr-model", str(tiny_whisper), "--no-translate", "--force", *TINY_FLAGS)
    assert code == 0 and "catalog" not in err
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    [video_entry] = catalog.list_videos(root)  # indexed by the run itself, no sync involved
    assert (video_entry.sha256, video_entry.file_name, video_entry.language, video_entry.status) == \
        (sha, "Куә сөзі 1.mp4", "kk", "done")
    assert video_entry.bundle == bundle.name
    code, out, _ = cli(capsys, "list", "--out", str(root))
    assert code == 0 and sha[:12] in out and out.rstrip().endswith("Куә сөзі 1.mp4")
    assert os.access(catalog.catalog_path(root), os.R_OK)


def test_the_overview_is_a_page_and_counts(tmp_path):
    """What each run shows in the Prefect UI: the videos changed last and the totals, never all rows."""
    root = tmp_path / "archive"
    for n in range(25):
        add(root, transcript(f"video-{n:02}.mp4", "kk", KK[:1], EN[:1]))
    catalog.record_arrival(root, "f" * 64, "/inbox/broken.mp4", "failed: not a video")
    add(root, transcript("video-03.mp4", "kk", KK[:2], EN[:2]))  # indexed again: now the newest change
    recent = catalog.recent_videos(root, 20)
    assert len(recent) == 20
    assert [v.file_name for v in recent[:2]] == ["video-03.mp4", "broken.mp4"]
    assert recent[2].file_name == "video-24.mp4"
    counts = catalog.status_counts(root)
    assert sum(counts.values()) == 26 and counts["failed"] == 1
