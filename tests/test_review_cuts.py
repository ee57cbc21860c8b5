"""A loop the machine cut off a segment (`cut`), through review saves: split, merge, restore, dismiss.

Real bundles published by the run's own path, real `save_revision` (the same call the server makes);
the browser side is tests/test_loop_restore.py. The cut belongs to the END of its segment, so a split
leaves it on the later part, a merge keeps the cut of the segment merged in, and a merge that would
bury an unanswered cut inside the text is refused, changing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.archive import catalog, documents
from pipeline.archive.bundle import find_bundle
from pipeline.archive.integrity import verify_bundle
from pipeline.asr.loops import cut_loop
from pipeline.cli.main import main
from pipeline.review import revisions
from pipeline.review.revisions import ReviewError
from pipeline.review.save import save_revision
from pipeline.run import process
from pipeline.transcript import Segment, Transcript, Word

from .test_catalog import transcript
from .test_public import _bytes_of

KEPT = "Үйге келдім үй"
LOOP = " үй" * 49  # what `cut_loop` takes off "Үйге келдім" + fifty "үй"


def _loop(seg_id: int, start: float, first: str) -> Segment:
    """A segment ending in fifty `үй`, cut by the ASR's own `cut_loop`."""
    spoken = [first, "келдім", *["үй"] * 50]
    words = [Word(round(start + 0.04 * i, 3), round(start + 0.04 * i + 0.04, 3), " " + w, 0.9)
             for i, w in enumerate(spoken)]
    return cut_loop(Segment(seg_id, start, start + 5.0, " ".join(spoken), "I came home", compression_ratio=9.0,
                            words=words, flags=["possible_hallucination"]))


def _transcript() -> Transcript:
    """Three segments: a cut loop, plain speech, another cut loop."""
    t = transcript("cuts.mp4", "kk", ["x", "екінші сөйлем", "x"], ["x", "second sentence", "x"])
    t.segments[0], t.segments[2] = _loop(0, 0.0, "Үйге"), _loop(2, 12.0, "Біз")
    return t


@pytest.fixture
def archive(tmp_path) -> Path:
    t = _transcript()
    process.publish_transcript(tmp_path, t)
    catalog.sync(tmp_path)
    return tmp_path


def _sha(archive: Path) -> str:
    return _transcript().source.sha256


def _newest(archive: Path) -> revisions.Revision:
    return revisions.newest(find_bundle(archive, _sha(archive)))


def _save(archive: Path, segments: list[dict]):
    return save_revision(archive, _sha(archive), base=_newest(archive).sha256, author="Aigerim", segments=segments)


def _editor(archive: Path) -> list[dict]:
    """The segments as the editor sends them back: no machine fields, no cut."""
    return [{k: s[k] for k in ("id", "start", "end", "text", "translation", "speaker", "checked")}
            for s in _newest(archive).segments]


def test_the_machine_cut_is_what_review_starts_from(archive):
    first, _, third = _newest(archive).segments
    assert (first["text"], first["cut"]["text"], first["cut"]["repeats"]) == (KEPT, LOOP, 50)
    assert third["text"] == "Біз келдім үй" and third["cut"]["text"] == LOOP


def test_a_split_leaves_the_cut_on_the_later_part_only(archive):
    first, *rest = _editor(archive)
    left = {**first, "end": 1.0, "text": "Үйге келдім"}
    right = {**first, "id": None, "split_from": 0, "start": 1.0, "text": "үй"}
    saved = _save(archive, [left, right, *rest])
    segs = {s["id"]: s for s in saved.revision.segments}
    assert "cut" not in segs[0], "the earlier part ends where speech went on: nothing to restore there"
    assert segs[3]["cut"]["text"] == LOOP and segs[3]["cut"]["repeats"] == 50
    changes = {c["segment"]: c for c in saved.revision.changes}
    assert changes[0]["fields"]["cut"] == [LOOP, None] and changes[3]["after"]["cut"] == LOOP

    later = _editor(archive)
    later[1]["text"] += LOOP
    later[1]["restore_cut"] = True
    restored = _save(archive, later).revision.segments
    assert [s["text"] for s in restored[:2]] == ["Үйге келдім", "үй" + LOOP]
    assert not any("cut" in s for s in restored[:2])
    assert verify_bundle(archive, find_bundle(archive, _sha(archive))).ok


def test_a_merge_into_a_segment_with_an_unanswered_cut_is_refused_and_changes_nothing(archive):
    bundle = find_bundle(archive, _sha(archive))
    before = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    first, second, third = _editor(archive)
    merged = {**first, "end": second["end"], "text": f"{first['text']} {second['text']}"}
    with pytest.raises(ReviewError, match=r"segment 0: merged with id 1, but id 0 ends in a loop the machine "
                                          r"cut \(«үй үй үй үй үй үй үй үй …» ×50\).*restore or dismiss"):
        _save(archive, [merged, third])
    assert {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()} == before
    assert not (bundle / revisions.DIR).exists()


def test_a_dismissed_cut_lets_the_merge_through_and_is_on_the_record(archive):
    first, second, third = _editor(archive)
    merged = {**first, "end": second["end"], "text": f"{first['text']} {second['text']}", "dismiss_cut": True}
    saved = _save(archive, [merged, third])
    seg = saved.revision.segments[0]
    assert seg["text"] == f"{KEPT} екінші сөйлем" and "cut" not in seg
    changes = {c["segment"]: c for c in saved.revision.changes}
    assert changes[0]["fields"]["cut"] == [LOOP, None] and changes[1]["change"] == "removed"


def test_a_dismissed_cut_and_a_merge_of_all_three_keep_the_last_cut(archive):
    first, second, third = _editor(archive)
    merged = {**first, "end": third["end"], "dismiss_cut": True,
              "text": " ".join(s["text"] for s in (first, second, third))}
    (seg,) = _save(archive, [merged]).revision.segments
    assert seg["cut"]["text"] == LOOP and seg["text"].endswith("Біз келдім үй"), "the first answered, the last kept"


def test_a_merge_keeps_the_cut_of_the_segment_merged_in_at_its_end(archive):
    first, second, third = _editor(archive)
    merged = {**second, "end": third["end"], "text": f"{second['text']} {third['text']}"}
    saved = _save(archive, [first, merged])
    seg = saved.revision.segments[1]
    assert seg["cut"]["text"] == LOOP and seg["text"].endswith("Біз келдім үй"), "still at the end: restorable"
    assert saved.revision.segments[0]["cut"]["text"] == LOOP, "the untouched segment keeps its own"

    later = _editor(archive)
    later[1]["text"] += LOOP
    later[1]["restore_cut"] = True
    seg = _save(archive, later).revision.segments[1]
    assert seg["text"] == f"екінші сөйлем Біз келдім үй{LOOP}" and "cut" not in seg


def test_a_dismissed_cut_alone_is_a_revision(archive):
    edited = _editor(archive)
    edited[0]["dismiss_cut"] = True
    saved = _save(archive, edited)
    assert not saved.unchanged
    assert saved.revision.changes == [{"segment": 0, "change": "edited", "fields": {"cut": [LOOP, None]}}]
    seg = saved.revision.segments[0]
    assert seg["text"] == KEPT and [w["word"].strip() for w in seg["words"]] == ["Үйге", "келдім", "үй"]


def test_a_typo_fix_keeps_the_cut_and_a_later_restore_appends_it(archive):
    edited = _editor(archive)
    edited[0]["text"] = "Үйге келдім, үй"
    fixed = _save(archive, edited).revision.segments[0]
    assert fixed["cut"]["text"] == LOOP and fixed["words"] is None, "the text changed: the word times went"

    later = _editor(archive)
    later[0]["text"] += LOOP
    later[0]["restore_cut"] = True
    seg = _save(archive, later).revision.segments[0]
    assert seg["text"] == "Үйге келдім, үй" + LOOP and "cut" not in seg and seg["words"] is None


@pytest.mark.parametrize("flag", ["restore_cut", "dismiss_cut"])
def test_a_flag_that_is_not_true_or_false_is_refused(archive, flag):
    edited = _editor(archive)
    edited[0][flag] = "yes"
    with pytest.raises(ReviewError, match=f"segment 0: {flag} must be true or false"):
        _save(archive, edited)


def test_a_restore_in_the_same_save_as_the_merge_answers_the_cut_merged_in(archive):
    first, second, third = _editor(archive)
    merged = {**second, "end": third["end"], "text": f"{second['text']} {third['text']}{LOOP}", "restore_cut": True}
    seg = _save(archive, [first, merged]).revision.segments[1]
    assert seg["text"].endswith("Біз келдім үй" + LOOP) and "cut" not in seg, "offered once, not again"


def test_the_public_copy_the_documents_and_the_renderings_leave_the_cut_out(archive, tmp_path):
    """`cut` is private until a reviewer restores it: the public schema, the documents and the renderings
    are built from allow-lists and the text, so the fifty `үй` are in none of them (zips opened). The
    bundle's own index.html and transcript.json are the private record, whole, and are not checked."""
    sha, bundle = _sha(archive), find_bundle(archive, _sha(archive))
    (tmp_path / "names.txt").write_text("Біз\n", encoding="utf-8")
    out = tmp_path / "public"
    assert main(["export", sha[:12], "--out", str(archive), "--redact", str(tmp_path / "names.txt"),
                 "-o", str(out)]) == 0
    (tmp_path / "documents").mkdir()
    for fmt in documents.FORMATS:
        documents.write_document(bundle, fmt, tmp_path / "documents" / documents.file_name(bundle.name, fmt))
    renderings = {f"bundle/{p.name}": p.read_bytes() for p in bundle.iterdir() if p.suffix in (".srt", ".vtt", ".txt")}
    files = {**{f"public/{k}": v for k, v in _bytes_of(out).items()}, **_bytes_of(tmp_path / "documents"),
             **renderings}
    assert {"public/index.html", "public/transcript.json", "bundle/kk.srt"} <= set(files) and len(files) >= 12
    assert json.loads(files["public/transcript.json"])["segments"][0]["text"] == KEPT
    assert all("келдім" in files[name].decode() for name in ("public/index.html", "bundle/kk.srt")), "the kept text"
    assert [name for name, data in files.items() if "үй үй" in data.decode("utf-8", "replace")] == []
