"""Review saves: revisions on a chain of hashes, merges, conflicts, refusals, and what verify makes of them.

The bundle is published through the run's own path (`process.publish_transcript`: real files, real
custody log, real catalog) from a transcript written here, so each case controls its segments.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.archive import catalog, custody
from pipeline.archive.bundle import MANIFEST, TRANSCRIPT, ReviewedBundleError, find_bundle
from pipeline.archive.integrity import export_bundle, verify_bundle
from pipeline.cli.main import main
from pipeline.review import revisions
from pipeline.review.revisions import ReviewError
from pipeline.review.save import ConflictError, save_revision
from pipeline.run import process
from pipeline.transcript import LOW_CONFIDENCE, Segment, Source, Transcript, Word

SHA = hashlib.sha256(b"a testimony").hexdigest()


def _transcript() -> Transcript:
    words = [Word(0.5, 1.0, " Менің", 0.9), Word(1.0, 1.6, " әкем", 0.8), Word(1.6, 2.4, " лагерьде", 0.7)]
    segments = [Segment(0, 0.5, 2.4, "Менің әкем лагерьде", "My father in the camp", -0.3, 0.1, 1.2, [],
                        words, 0.0, english_source="machine"),
                Segment(1, 3.0, 5.0, "Екі жыл болды", "Was two years", -1.2, 0.2, 1.1, [LOW_CONFIDENCE],
                        None, 0.0, english_source="machine"),
                Segment(2, 6.0, 8.0, "Ол қайтып келмеді", "He did not come back", -0.4, 0.1, 1.0, [], None, 0.0,
                        english_source="machine")]
    return Transcript(Source("witness 1.mp4", SHA, 1000, 9.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base"}, "options_key": "k"}, segments, created="2026-12-01T00:00:00+00:00")


@pytest.fixture
def archive(tmp_path) -> Path:
    process.publish_transcript(tmp_path, _transcript())
    catalog.index_bundle(tmp_path, find_bundle(tmp_path, SHA))
    return tmp_path


def _segments(bundle: Path) -> list[dict]:
    return [dict(s) for s in revisions.newest(bundle).segments]


def _edit(archive: Path, author: str = "Aigul", base: str | None = None, **by_id) -> object:
    bundle = find_bundle(archive, SHA)
    newest = revisions.newest(bundle)
    segments = [dict(s) for s in newest.segments]
    for seg in segments:
        seg.update(by_id.get(f"s{seg['id']}", {}))
    return save_revision(archive, SHA, base=base or newest.sha256, author=author, segments=segments)


def test_a_save_is_a_revision_on_the_record(archive, capsys):
    bundle = find_bundle(archive, SHA)
    implied = revisions.newest(bundle)
    assert not implied.stored and implied.number == 0

    saved = _edit(archive, s0={"text": "Менің әкем лагерьде отырды", "checked": True},
                  s1={"translation": "It has been two years", "end": 5.1})
    bundle = saved.bundle
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*.json")}
    assert {"revisions/0000.json", "revisions/0001.json"} <= files
    draft = (bundle / "revisions/0000.json").read_bytes()
    assert hashlib.sha256(draft).hexdigest() == implied.sha256, "revision 0 is the machine draft, as implied"
    first = revisions.decode((bundle / "revisions/0001.json").read_bytes(), "0001")
    assert first.parent == implied.sha256 and first.author == "Aigul" and first.sha256 == saved.revision.sha256

    transcript = Transcript.load(bundle / TRANSCRIPT)
    s0, s1 = transcript.segments[0], transcript.segments[1]
    assert s0.text == "Менің әкем лагерьде отырды" and s0.checked and s0.words is None, "word times dropped"
    assert (s1.translation, s1.english_source, s1.end) == ("It has been two years", "edited", 5.1)
    assert s1.flags == [LOW_CONFIDENCE] and s1.avg_logprob == -1.2, "the machine's fields are kept"
    assert "Менің әкем лагерьде отырды" in (bundle / "kk.srt").read_text(encoding="utf-8")
    assert "It has been two years" in (bundle / "en.srt").read_text(encoding="utf-8")
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert "revisions/0001.json" in manifest["files"]

    revise = [e for e in custody.read(archive, SHA) if e["event"] == "revise"]
    assert [(e["revision"], e["revision_sha256"], e["author"]) for e in revise] == [(1, first.sha256, "Aigul")]
    assert verify_bundle(archive, bundle).ok
    assert [h.segment for h in catalog.search(archive, "отырды")] == [0], "search shows the newest text"

    assert main(["history", SHA[:12], "--out", str(archive)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "Aigul" in listed[1] and "2 segment(s) changed" in listed[1]
    assert main(["history", SHA[:12], "--revision", "1", "--out", str(archive)]) == 0
    shown = capsys.readouterr().out
    assert "'Менің әкем лагерьде' -> 'Менің әкем лагерьде отырды'" in shown and "end: 5.0 -> 5.1" in shown


def test_saves_from_one_base_merge_and_the_same_segment_conflicts(archive):
    bundle = find_bundle(archive, SHA)
    base = revisions.newest(bundle).sha256
    _edit(archive, "Aigul", base, s0={"text": "first reviewer"})
    merged = _edit(archive, "Erlan", base, s2={"text": "second reviewer"})
    assert merged.merged and merged.revision.number == 2 and merged.revision.base == 0
    texts = [s.text for s in Transcript.load(merged.bundle / TRANSCRIPT).segments]
    assert texts[0] == "first reviewer" and texts[2] == "second reviewer"

    before = (merged.bundle / MANIFEST).read_bytes()
    with pytest.raises(ConflictError) as caught:
        _edit(archive, "Erlan", base, s0={"text": "a different fix"})
    (conflict,) = caught.value.conflicts
    assert conflict["theirs"]["text"] == "first reviewer" and conflict["mine"]["text"] == "a different fix"
    assert (merged.bundle / MANIFEST).read_bytes() == before, "a conflict writes nothing"
    assert verify_bundle(archive, merged.bundle).ok


def test_split_and_merge_of_segments(archive):
    bundle = find_bundle(archive, SHA)
    newest = revisions.newest(bundle)
    first, second, third = (dict(s) for s in newest.segments)
    left = {**first, "end": 1.6, "text": "Менің әкем"}
    right = {**first, "id": None, "split_from": 0, "start": 1.6, "text": "лагерьде"}
    joined = {**second, "end": third["end"], "text": second["text"] + " " + third["text"]}
    saved = save_revision(archive, SHA, base=newest.sha256, author="Aigul", segments=[left, right, joined])
    segs = Transcript.load(saved.bundle / TRANSCRIPT).segments
    assert [(s.id, s.start, s.end) for s in segs] == [(0, 0.5, 1.6), (3, 1.6, 2.4), (1, 3.0, 8.0)]
    assert [w.word for w in segs[1].words] == [" лагерьде"], "a split keeps the words it covers"
    kinds = sorted(c["change"] for c in saved.revision.changes)
    assert kinds == ["added", "edited", "edited", "removed"]


@pytest.mark.parametrize("change, message", [
    ({"s1": {"end": 2.0}}, "not after its start"),
    ({"s1": {"end": 60.0}}, "after the recording's end"),
    ({"s1": {"id": 99}}, "is not a segment of this revision"),
    ({"s1": {"text": None}}, "text must be text"),
    ({"s1": {"start": "soon"}}, "start must be a number"),
    ({"s1": {"checked": "yes"}}, "checked must be true or false"),
    ({"s1": {"english_source": "guess"}}, "english_source must be one of"),
])
def test_a_bad_save_is_refused_and_changes_nothing(archive, change, message):
    bundle = find_bundle(archive, SHA)
    before = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    with pytest.raises(ReviewError, match=message):
        _edit(archive, **change)
    assert {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()} == before
    assert not (bundle / "revisions").exists()


def test_bad_base_author_and_body(archive):
    bundle = find_bundle(archive, SHA)
    segments = [dict(s) for s in revisions.newest(bundle).segments]
    with pytest.raises(ReviewError, match="is not a revision"):
        save_revision(archive, SHA, base="0" * 64, author="Aigul", segments=segments)
    with pytest.raises(ReviewError, match="author"):
        save_revision(archive, SHA, base=revisions.newest(bundle).sha256, author="  ", segments=segments)
    with pytest.raises(ReviewError, match="expected a list"):
        save_revision(archive, SHA, base=revisions.newest(bundle).sha256, author="A", segments={"0": 1})
    duplicate = segments + [dict(segments[0])]
    with pytest.raises(ReviewError, match="appears twice"):
        save_revision(archive, SHA, base=revisions.newest(bundle).sha256, author="A", segments=duplicate)


def test_verify_names_a_changed_rendering_or_revision(archive, capsys):
    saved = _edit(archive, s0={"text": "corrected"})
    srt = saved.bundle / "kk.srt"
    srt.write_text(srt.read_text(encoding="utf-8").replace("corrected", "tampered"), encoding="utf-8")
    assert main(["verify", SHA[:12], "--out", str(archive)]) == 1
    assert "kk.srt: changed" in capsys.readouterr().out

    saved = _edit(archive, s1={"text": "again"})  # re-renders the SRT from the newest revision
    assert verify_bundle(archive, saved.bundle).ok
    first = saved.bundle / "revisions/0001.json"
    first.write_bytes(first.read_bytes().replace("corrected".encode(), b"forged"))
    problems = verify_bundle(archive, saved.bundle).problems
    assert any("revisions/0001.json: changed" in p for p in problems)
    assert any("revisions/0002.json: its parent hash does not match" in p for p in problems)


def test_a_machine_run_never_replaces_reviewed_work(archive, tmp_path):
    saved = _edit(archive, s0={"text": "a person's fix"})
    before = (saved.bundle / MANIFEST).read_bytes()
    with pytest.raises(ReviewedBundleError, match="reviewed by a person"):
        process.publish_transcript(archive, _transcript())
    with pytest.raises(ReviewedBundleError, match="move that bundle folder out of the archive"):
        process.retranslate(archive, SHA[:12])
    assert (saved.bundle / MANIFEST).read_bytes() == before
    assert Transcript.load(saved.bundle / TRANSCRIPT).segments[0].text == "a person's fix"


def test_export_carries_the_revisions(archive, tmp_path):
    import zipfile

    saved = _edit(archive, s0={"text": "exported fix"})
    out = export_bundle(archive, saved.bundle, tmp_path / "out.zip")
    names = zipfile.ZipFile(out).namelist()
    assert f"{saved.bundle.name}/revisions/0000.json" in names and f"{saved.bundle.name}/revisions/0001.json" in names
    sums = zipfile.ZipFile(out).read("SHA256SUMS").decode()
    assert "revisions/0001.json" in sums


def test_named_speakers_show_in_the_renderings(tmp_path):
    transcript = _transcript()
    transcript.sidecar = {"file_name": "witness 1.mp4.json", "sha256": "0" * 64,
                          "content": {"speaker_names": {"S1": "Interviewer"}}}
    process.publish_transcript(tmp_path, transcript)
    saved = _edit(tmp_path, s0={"speaker": "S1"}, s1={"speaker": "Witness <2>"})
    srt = (saved.bundle / "kk.srt").read_text(encoding="utf-8")
    assert "Interviewer: Менің әкем лагерьде" in srt and "Witness <2>: Екі жыл болды" in srt
    vtt = (saved.bundle / "kk-en.vtt").read_text(encoding="utf-8")
    assert "<v Interviewer>Менің әкем лагерьде" in vtt and "<v Witness 2>Екі жыл болды" in vtt
    assert "Ол қайтып келмеді" in (saved.bundle / "kk.txt").read_text(encoding="utf-8").splitlines()[2]
