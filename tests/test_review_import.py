"""Corrections made elsewhere come back in (issue 22): an SRT, VTT or DOCX returned from another
program becomes one revision by a named account, its segments checked, custody naming the file."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.archive import custody
from pipeline.archive.bundle import find_bundle
from pipeline.cli.main import main
from pipeline.review import accounts, revisions

from .test_review import SHA, archive  # noqa: F401  (the fixture: a published Kazakh bundle)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _outside(tmp_path, name: str):
    """Where the reviewer's returned file lies: beside the archive, not in it."""
    folder = tmp_path / "returned"
    folder.mkdir(exist_ok=True)
    return folder / name


def _rendering(archive, name: str) -> str:  # noqa: F811
    return (find_bundle(archive, SHA) / name).read_text(encoding="utf-8")


def test_an_edited_srt_is_one_revision_by_the_account(archive, capsys, tmp_path):  # noqa: F811
    accounts.add(archive, "aigerim", "reviewer", ("kk",))
    srt = _rendering(archive, "kk.srt").replace("лагерьде", "лагерде").replace("Екі жыл болды", "Екі жыл өтті")
    returned = _outside(tmp_path, "kk.srt")
    returned.write_text(srt, encoding="utf-8")
    code, out, err = _cli(capsys, "review", "import", SHA[:12], str(returned), "--as", "aigerim", "--out", str(archive))
    assert code == 0, err
    assert "revision 1 by aigerim" in out and "3 segment(s) changed" in out  # two texts, and all three checked
    newest = revisions.newest(find_bundle(archive, SHA))
    assert [s["text"] for s in newest.segments] == ["Менің әкем лагерде", "Екі жыл өтті", "Ол қайтып келмеді"]
    assert all(s["checked"] for s in newest.segments), "every segment the file covers is checked"
    events = custody.read(archive, SHA)
    event = next(e for e in reversed(events) if e["event"] == "revise")
    assert event["author"] == "aigerim"
    assert events[-1]["event"] == "state" and events[-1]["to"] == "in_review", "as a save: the reviewer holds it"
    assert event["from_file"] == {"file": "kk.srt", "sha256": hashlib.sha256(returned.read_bytes()).hexdigest()}
    assert main(["verify", SHA[:12], "--out", str(archive)]) == 0, capsys.readouterr()


def test_a_bilingual_vtt_and_english_only(archive, capsys, tmp_path):  # noqa: F811
    accounts.add(archive, "aigerim", "reviewer", ("kk",))
    vtt = _rendering(archive, "kk-en.vtt").replace("Was two years", "Two years passed")
    returned = _outside(tmp_path, "kk-en.vtt")
    returned.write_text(vtt, encoding="utf-8")
    assert _cli(capsys, "review", "import", SHA[:12], str(returned), "--as", "aigerim", "--out", str(archive))[0] == 0
    seg = revisions.newest(find_bundle(archive, SHA)).segments[1]
    assert (seg["text"], seg["translation"], seg["english_source"]) == ("Екі жыл болды", "Two years passed", "edited")
    first = revisions.newest(find_bundle(archive, SHA)).segments[0]
    assert first["english_source"] == "machine", "English the file left alone keeps its source"


def test_a_returned_docx_table(archive, capsys, tmp_path):  # noqa: F811
    import docx

    accounts.add(archive, "aigerim", "reviewer", ("kk",))
    path = _outside(tmp_path, "t.docx")
    assert main(["get", SHA[:12], "--format", "docx", "--out", str(archive), "--output", str(path)]) == 0
    capsys.readouterr()
    document = docx.Document(str(path))
    table = next(t for t in document.tables if t.rows[0].cells[1].text == "Time")
    table.rows[3].cells[3].text = "Ол ешқашан қайтып келмеді"
    document.save(str(path))
    assert _cli(capsys, "review", "import", SHA[:12], str(path), "--as", "aigerim",
                "--out", str(archive))[0] == 0
    assert revisions.newest(find_bundle(archive, SHA)).segments[2]["text"] == "Ол ешқашан қайтып келмеді"


@pytest.mark.parametrize("edit, message", [
    (lambda srt: srt.replace("00:00:06,000 --> 00:00:08,000", "00:00:20,000 --> 00:00:22,000"),
     r"t.srt:\d+: no segment lies under this cue's times"),
    (lambda srt: srt.replace("00:00:03,000 --> 00:00:05,000", "00:00:01,600 --> 00:00:04,000"),
     r"t.srt:\d+: this cue straddles two segments"),
    (lambda srt: srt.replace("00:00:03,000 --> 00:00:05,000", "00:00:05,000 --> 00:00:03,000"),
     r"t.srt:\d+: the cue ends before it starts"),
    (lambda srt: "not subtitles at all\n", "no subtitle cues found"),
])
def test_a_file_that_cannot_be_placed_is_refused_naming_the_line(archive, capsys, tmp_path, edit, message):  # noqa: F811
    import re

    accounts.add(archive, "aigerim", "reviewer", ("kk",))
    returned = _outside(tmp_path, "t.srt")
    returned.write_text(edit(_rendering(archive, "kk.srt")), encoding="utf-8")
    before = custody.read(archive, SHA)
    code, out, err = _cli(capsys, "review", "import", SHA[:12], str(returned), "--as", "aigerim", "--out", str(archive))
    assert code == 2 and out == "" and re.search(message, err), err
    assert revisions.newest(find_bundle(archive, SHA)).number == 0 and custody.read(archive, SHA) == before


def test_the_account_must_exist_and_may_sign_in(archive, capsys, tmp_path):  # noqa: F811
    returned = _outside(tmp_path, "kk.srt")
    returned.write_text(_rendering(archive, "kk.srt"), encoding="utf-8")
    code, _, err = _cli(capsys, "review", "import", SHA[:12], str(returned), "--as", "nobody", "--out", str(archive))
    assert code == 2 and "no account of that name" in err
    accounts.add(archive, "gone", "reviewer", ("kk",))
    accounts.disable(archive, "gone")
    assert _cli(capsys, "review", "import", SHA[:12], str(returned), "--as", "gone", "--out", str(archive))[0] == 2
    assert _cli(capsys, "review", "import", SHA[:12], str(returned), "--out", str(archive))[0] == 2


def test_docx_times_cut_to_tenths_still_place_a_short_segment():
    """The document shows 12.31-12.38 s as 0:00:12.3-0:00:12.3: the cue is placed, not divided by zero."""
    from pathlib import Path

    from pipeline.review.imports import _row_cue, apply_cues

    cue = _row_cue(Path("t.docx"), 1, ["", "0:00:12.3–0:00:12.3", "", "ия", ""])
    segments = [{"id": 0, "start": 10.0, "end": 12.31, "text": "a"}, {"id": 1, "start": 12.31, "end": 12.38,
                                                                        "text": "b"}]
    assert apply_cues(Path("t.docx"), segments, [cue], "bilingual", set())[1]["text"] == "ия"


def test_an_import_into_approved_text_puts_it_back_in_review(archive, capsys, tmp_path):  # noqa: F811
    from pipeline.review import workflow

    accounts.add(archive, "aigerim", "reviewer", ("kk",))
    accounts.add(archive, "bolat", "reviewer", ("kk",))
    accounts.add(archive, "dilnur", "reviewer", ("ug",))
    returned = _outside(tmp_path, "kk.srt")
    returned.write_text(_rendering(archive, "kk.srt"), encoding="utf-8")
    args = ("review", "import", SHA[:12], str(returned), "--out", str(archive), "--as")
    assert _cli(capsys, *args, "aigerim")[0] == 0  # every segment checked, held by aigerim
    workflow.check(archive, SHA, accounts.get(archive, "aigerim"))
    workflow.approve(archive, SHA, accounts.get(archive, "bolat"))
    code, _, err = _cli(capsys, *args, "dilnur")
    assert code == 2 and "may not change a kk transcript" in err, "a reviewer of another language"
    returned.write_text(_rendering(archive, "kk.srt").replace("Екі жыл болды", "Екі жыл өтті"), encoding="utf-8")
    assert _cli(capsys, *args, "bolat")[0] == 0
    status = workflow.state(archive, SHA)
    assert (status.state, status.holder) == ("in_review", "bolat"), "changed text is not the approved text"
