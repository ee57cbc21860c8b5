"""The review workflow (issue 21): draft -> in review -> checked -> approved by a second person, every
transition a custody event naming the account, refusals 403 (this person may not) or 409 (not from this
state), queues oldest first, hours per language and state, and an index rebuilt from custody.

Bundles are published through the run's own path (`process.publish_transcript`: real files, custody log
and catalog) from transcripts written here; accounts are real (scrypt hashes in the archive)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.archive import catalog, custody
from pipeline.archive.bundle import find_bundle
from pipeline.cli.main import main
from pipeline.review import accounts, revisions, workflow, workflow_record
from pipeline.review.save import save_revision
from pipeline.review.workflow import WorkflowError
from pipeline.run import process
from pipeline.transcript import Segment, Source, Transcript

ROOT = Path(__file__).resolve().parent.parent
KK = hashlib.sha256(b"kazakh testimony").hexdigest()
KK_OLD = hashlib.sha256(b"older kazakh testimony").hexdigest()
UG = hashlib.sha256(b"uyghur testimony").hexdigest()


def _publish(archive: Path, sha256: str, language: str, duration: float, created: str, name: str) -> None:
    segments = [Segment(0, 0.0, 2.0, "бір", "one"), Segment(1, 2.0, 4.0, "екі", "two")]
    transcript = Transcript(Source(name, sha256, 1000, duration, {"index": 1}), language, language, 0.9,
                            {"asr": {"name": "base"}, "options_key": "k"}, segments, created=created)
    process.publish_transcript(archive, transcript)
    catalog.index_bundle(archive, find_bundle(archive, sha256))


@pytest.fixture
def archive(tmp_path) -> Path:
    """Two Kazakh bundles (the older published first: 1 h and 30 min) and a Uyghur one (2 h); an admin,
    two Kazakh reviewers, a Uyghur reviewer and a reader."""
    _publish(tmp_path, KK, "kk", 1800.0, "2026-12-02T00:00:00+00:00", "new kk.mp4")
    _publish(tmp_path, KK_OLD, "kk", 3600.0, "2026-12-01T00:00:00+00:00", "old kk.mp4")
    _publish(tmp_path, UG, "ug", 7200.0, "2026-12-01T12:00:00+00:00", "ug.mp4")
    for name, role, languages in [("nurlan", "admin", ()), ("aigerim", "reviewer", ("kk",)),
                                  ("erlan", "reviewer", ("kk",)), ("dilnur", "reviewer", ("ug",)),
                                  ("reader1", "reader", ())]:
        accounts.add(tmp_path, name, role, languages, password="a long test password")
    return tmp_path


def _as(archive: Path, name: str) -> accounts.Account:
    return accounts.get(archive, name)


def _refused(status: int, call, *args) -> WorkflowError:
    with pytest.raises(WorkflowError) as caught:
        call(*args)
    assert caught.value.status == status, str(caught.value)
    assert "/" not in str(caught.value), "a refusal names no file path"
    return caught.value


def _check_every_segment(archive: Path, sha256: str, author: str) -> None:
    newest = revisions.newest(find_bundle(archive, sha256))
    segments = [{**s, "checked": True} for s in newest.segments]
    save_revision(archive, sha256, base=newest.sha256, author=author, segments=segments)


def _state_events(archive: Path, sha256: str) -> list[dict]:
    return [e for e in custody.read(archive, sha256) if e["event"] == "state"]


def test_a_bundle_goes_from_draft_to_approved_and_custody_names_each_person(archive):
    assert workflow.state(archive, KK) == workflow.Status("draft")
    held = workflow.claim(archive, KK, _as(archive, "aigerim"))
    assert (held.state, held.holder) == ("in_review", "aigerim") and held.changed
    _check_every_segment(archive, KK, "aigerim")
    checked = workflow.check(archive, KK, _as(archive, "aigerim"))
    assert (checked.state, checked.checker) == ("checked", "aigerim")
    _refused(403, workflow.approve, archive, KK, _as(archive, "aigerim"))  # the checker cannot approve
    approved = workflow.approve(archive, KK, _as(archive, "erlan"))  # a second reviewer can
    assert (approved.state, approved.checker, approved.approver) == ("approved", "aigerim", "erlan")
    assert workflow.state(archive, KK) == approved

    events = _state_events(archive, KK)
    assert [(e["action"], e["from"], e["to"], e["by"]) for e in events] == [
        ("claim", "draft", "in_review", "aigerim"), ("check", "in_review", "checked", "aigerim"),
        ("approve", "checked", "approved", "erlan")]
    assert events[-1]["role"] == "reviewer" and events[-1]["checker"] == "aigerim"
    assert custody.check_chain(archive, KK) == [], "the events are on the video's hash chain"


def test_verify_passes_with_state_events_and_fails_on_an_edited_one(archive, capsys):
    workflow.claim(archive, KK, _as(archive, "aigerim"))
    workflow.release(archive, KK, _as(archive, "aigerim"))
    assert main(["verify", KK[:12], "--out", str(archive)]) == 0, capsys.readouterr()
    log = custody.log_path(archive, KK)
    log.write_text(log.read_text().replace('"by": "aigerim"', '"by": "erlan"', 1))
    assert main(["verify", KK[:12], "--out", str(archive)]) == 1
    assert "prev does not match" in capsys.readouterr().out


def test_claim_refusals(archive):
    _refused(403, workflow.claim, archive, UG, _as(archive, "aigerim"))  # not her language
    _refused(403, workflow.claim, archive, KK, _as(archive, "reader1"))
    assert workflow.claim(archive, UG, _as(archive, "nurlan")).holder == "nurlan", "an admin may claim any"
    workflow.claim(archive, KK, _as(archive, "aigerim"))
    error = _refused(409, workflow.claim, archive, KK, _as(archive, "erlan"))
    assert "held by aigerim" in str(error)
    _refused(409, workflow.claim, archive, KK, _as(archive, "aigerim"))
    accounts.disable(archive, "erlan")
    _refused(403, workflow.claim, archive, KK_OLD, _as(archive, "erlan"))
    assert workflow.state(archive, KK_OLD).state == "draft", "a refusal changes nothing"
    assert _state_events(archive, KK_OLD) == []


def test_assign_is_for_admins_to_a_reviewer_of_the_language(archive):
    _refused(403, workflow.assign, archive, KK, "erlan", _as(archive, "aigerim"))
    _refused(403, workflow.assign, archive, KK, "dilnur", _as(archive, "nurlan"))  # Uyghur reviewer
    _refused(403, workflow.assign, archive, KK, "reader1", _as(archive, "nurlan"))
    _refused(404, workflow.assign, archive, KK, "nobody", _as(archive, "nurlan"))
    assert workflow.assign(archive, KK, "aigerim", _as(archive, "nurlan")).holder == "aigerim"
    moved = workflow.assign(archive, KK, "erlan", _as(archive, "nurlan"))  # from one holder to another
    assert (moved.state, moved.holder) == ("in_review", "erlan")
    assert _state_events(archive, KK)[-1]["by"] == "nurlan" and _state_events(archive, KK)[-1]["holder"] == "erlan"
    _check_every_segment(archive, KK, "erlan")
    workflow.check(archive, KK, _as(archive, "erlan"))
    _refused(409, workflow.assign, archive, KK, "aigerim", _as(archive, "nurlan"))


def test_release_by_the_holder_or_an_admin(archive):
    _refused(409, workflow.release, archive, KK, _as(archive, "aigerim"))  # a draft: nothing to release
    workflow.claim(archive, KK, _as(archive, "aigerim"))
    _refused(403, workflow.release, archive, KK, _as(archive, "erlan"))
    _refused(403, workflow.release, archive, KK, _as(archive, "reader1"))
    assert workflow.release(archive, KK, _as(archive, "aigerim")).state == "draft"
    workflow.claim(archive, KK, _as(archive, "erlan"))
    released = workflow.release(archive, KK, _as(archive, "nurlan"))
    assert released == workflow.Status("draft", changed=released.changed)
    assert [e["action"] for e in _state_events(archive, KK)] == ["claim", "release", "claim", "release"]


def test_check_needs_the_holder_and_every_segment_checked(archive):
    _refused(409, workflow.check, archive, KK, _as(archive, "aigerim"))  # a draft nobody holds
    workflow.claim(archive, KK, _as(archive, "aigerim"))
    _refused(403, workflow.check, archive, KK, _as(archive, "erlan"))
    _refused(403, workflow.check, archive, KK, _as(archive, "nurlan"))  # an admin who does not hold it
    error = _refused(409, workflow.check, archive, KK, _as(archive, "aigerim"))
    assert "2 of 2 segments" in str(error)
    newest = revisions.newest(find_bundle(archive, KK))
    half = [{**newest.segments[0], "checked": True}, newest.segments[1]]
    save_revision(archive, KK, base=newest.sha256, author="aigerim", segments=half)
    assert "1 of 2 segments" in str(_refused(409, workflow.check, archive, KK, _as(archive, "aigerim")))
    _check_every_segment(archive, KK, "aigerim")
    assert workflow.check(archive, KK, _as(archive, "aigerim")).state == "checked"
    _refused(409, workflow.check, archive, KK, _as(archive, "aigerim"))


def test_approve_refusals(archive):
    _refused(409, workflow.approve, archive, UG, _as(archive, "dilnur"))  # a draft
    workflow.claim(archive, UG, _as(archive, "dilnur"))
    _check_every_segment(archive, UG, "dilnur")
    workflow.check(archive, UG, _as(archive, "dilnur"))
    _refused(403, workflow.approve, archive, UG, _as(archive, "dilnur"))
    _refused(403, workflow.approve, archive, UG, _as(archive, "aigerim"))  # not her language
    _refused(403, workflow.approve, archive, UG, _as(archive, "reader1"))
    assert workflow.approve(archive, UG, _as(archive, "nurlan")).approver == "nurlan"
    _refused(409, workflow.approve, archive, UG, _as(archive, "nurlan"))


def test_a_save_after_checking_returns_the_bundle_to_review(archive):
    assert workflow.after_save(archive, KK, _as(archive, "nurlan")).state == "draft", "an admin's save claims nothing"
    assert workflow.after_save(archive, KK, _as(archive, "aigerim")).holder == "aigerim", "a reviewer's save claims"
    assert workflow.after_save(archive, KK, _as(archive, "erlan")).holder == "aigerim", "in review: holder stays"
    _check_every_segment(archive, KK, "aigerim")
    workflow.check(archive, KK, _as(archive, "aigerim"))
    workflow.approve(archive, KK, _as(archive, "erlan"))
    back = workflow.after_save(archive, KK, _as(archive, "erlan"))
    assert (back.state, back.holder, back.checker, back.approver) == ("in_review", "erlan", None, None)
    assert [e["action"] for e in _state_events(archive, KK)] == ["save", "check", "approve", "save"], \
        "a save that changes no state logs nothing"


def _claim_in_process(archive: str, name: str, start, results) -> None:
    start.wait()
    try:
        results.put((name, workflow.claim(archive, KK, accounts.get(archive, name)).holder))
    except WorkflowError as exc:
        results.put((name, exc.status))


def test_two_reviewers_claiming_at_once_one_holds_it(archive):
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(3), context.Queue()
    names = ["aigerim", "erlan", "nurlan"]
    workers = [context.Process(target=_claim_in_process, args=(str(archive), n, start, results)) for n in names]
    for w in workers:
        w.start()
    outcomes = dict(results.get(timeout=60) for _ in names)
    for w in workers:
        w.join(60)
    winners = [n for n, result in outcomes.items() if result == n]
    assert len(winners) == 1 and sorted(outcomes.values(), key=str).count(409) == 2, outcomes
    assert workflow.state(archive, KK).holder == winners[0]
    assert [e["by"] for e in _state_events(archive, KK)] == winners, "one claim logged"


def test_queue_oldest_first_and_progress_in_hours(archive):
    assert [q.sha256 for q in workflow.queue(archive, "kk")] == [KK_OLD, KK]
    first = workflow.queue(archive, "kk")[0]
    assert (first.id, first.file_name, first.duration) == (KK_OLD[:12], "old kk.mp4", 3600.0)
    workflow.claim(archive, KK_OLD, _as(archive, "aigerim"))
    assert [q.sha256 for q in workflow.queue(archive, "kk")] == [KK]
    assert workflow.queue(archive, "en") == []
    workflow.claim(archive, UG, _as(archive, "dilnur"))
    _check_every_segment(archive, UG, "dilnur")
    workflow.check(archive, UG, _as(archive, "dilnur"))
    assert workflow.progress(archive) == {
        "kk": {"draft": 0.5, "in_review": 1.0, "checked": 0.0, "approved": 0.0},
        "ug": {"draft": 0.0, "in_review": 0.0, "checked": 2.0, "approved": 0.0}}


def test_the_index_is_rebuilt_from_custody(archive):
    workflow.claim(archive, KK_OLD, _as(archive, "aigerim"))
    workflow.claim(archive, UG, _as(archive, "dilnur"))
    workflow.release(archive, UG, _as(archive, "dilnur"))
    before = workflow.progress(archive)
    workflow_record.index_path(archive).unlink()  # an archive copied without it
    assert workflow.progress(archive) == before
    assert workflow_record.index_path(archive).stat().st_mode & 0o777 == 0o600, "owner-only, as the catalog"
    assert workflow_record.states(archive)[KK_OLD].holder == "aigerim"
    with workflow_record.connect(archive) as con:  # a copy that went wrong: the record puts it right
        con.execute("UPDATE states SET state = 'approved'")
    assert workflow_record.rebuild(archive) == 2
    assert workflow.progress(archive) == before


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_acts_as_a_named_account_and_prints_progress(archive, capsys):
    out_arg = ("--out", str(archive))
    code, out, err = _cli(capsys, "review", "claim", KK_OLD[:12], "--as", "aigerim", *out_arg)
    assert code == 0 and out.strip().endswith("in review, held by aigerim"), err
    code, out, err = _cli(capsys, "review", "claim", KK_OLD[:12], "--as", "erlan", *out_arg)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "held by aigerim" in err
    code, out, err = _cli(capsys, "review", "claim", KK[:12], "--as", "nobody", *out_arg)
    assert (code, out) == (2, "") and err == "error: no account called 'nobody' (see `testimony users list`)\n"
    code, _, err = _cli(capsys, "review", "assign", KK[:12], "--as", "nurlan", *out_arg)
    assert code == 2 and "--to NAME" in err and err.count("\n") == 1
    assert _cli(capsys, "review", "assign", KK[:12], "--to", "erlan", "--as", "nurlan", *out_arg)[0] == 0
    assert _cli(capsys, "review", "release", KK[:12], "--as", "erlan", *out_arg)[0] == 0
    code, _, err = _cli(capsys, "review", "check", KK_OLD[:12], "--as", "aigerim", *out_arg)
    assert code == 2 and "2 of 2 segments" in err
    assert _cli(capsys, "review", "approve", KK_OLD[:12], "--as", "erlan", *out_arg)[0] == 2

    code, out, err = _cli(capsys, "progress", *out_arg)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["LANG", "DRAFT", "IN", "REVIEW", "CHECKED", "APPROVED"]
    assert lines[2].split() == ["kk", "0.50", "1.00", "0.00", "0.00"]
    assert lines[3].split() == ["ug", "2.00", "0.00", "0.00", "0.00"]
    assert lines[4].split() == ["all", "2.50", "1.00", "0.00", "0.00"]
    code, out, _ = _cli(capsys, "progress", "--json", *out_arg)
    assert code == 0 and json.loads(out)["kk"] == {"draft": 0.5, "in_review": 1.0, "checked": 0.0, "approved": 0.0}
    with workflow_record.connect(archive) as con:
        con.execute("DELETE FROM states")  # an index a crash left behind its custody events
    code, out, err = _cli(capsys, "progress", "--json", "--rebuild", *out_arg)
    assert code == 0 and json.loads(out)["kk"]["in_review"] == 1.0 and "rebuilt: 2 bundle(s)" in err  # 1 held, 1 freed


def test_cli_progress_as_a_process(archive, tmp_path):
    """The command a person types: a real process, its exit status, and a missing archive refused."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    done = run("progress", "--json", "--out", str(archive))
    assert done.returncode == 0 and json.loads(done.stdout)["ug"]["draft"] == 2.0, done.stderr
    missing = run("progress", "--out", str(tmp_path / "none"))
    last = missing.stderr.splitlines()[-1]  # (after runpy's warning about `-m pipeline.cli.main`)
    assert missing.returncode == 2 and last.startswith("error: no archive at") and "--out" in last


AFTER_SAVE = """
import sys
from pipeline.review import accounts, workflow
workflow.after_save(sys.argv[1], sys.argv[2], accounts.get(sys.argv[1], sys.argv[3]))
"""


def _killed_after_custody(*args: str) -> int:
    """A real process SIGKILLed between a move's custody event and its copy in the index."""
    env = {**os.environ, "TESTIMONY_KILL_AT": "workflow:logged"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, timeout=120).returncode


def test_a_move_killed_between_custody_and_the_index_is_read_from_custody(archive):
    """Custody is written first, the index after: a process killed between the two leaves a mark, and
    the index is not trusted for that video: a bundle custody approved is listed, one custody moved back
    into review is not shown to readers as approved, and the next read heals the row."""
    workflow.claim(archive, KK_OLD, _as(archive, "aigerim"))
    _check_every_segment(archive, KK_OLD, "aigerim")
    workflow.check(archive, KK_OLD, _as(archive, "aigerim"))
    code = _killed_after_custody("-m", "pipeline.cli.main", "review", "approve", KK_OLD[:12], "--as", "erlan",
                                 "--out", str(archive))
    assert code == -9 and workflow_record.logged_status(archive, KK_OLD).state == "approved"
    assert workflow.approved(archive) == {KK_OLD}
    with workflow_record.connect(archive) as con:
        assert con.execute("SELECT state FROM states WHERE sha256 = ?", (KK_OLD,)).fetchone() == ("approved",)
        assert con.execute("SELECT count(*) FROM moving").fetchone() == (0,), "healed: the mark is gone"

    code = _killed_after_custody("-c", AFTER_SAVE, str(archive), KK_OLD, "aigerim")  # a save: back into review
    assert code == -9 and workflow_record.logged_status(archive, KK_OLD).state == "in_review"
    assert workflow.approved(archive) == set(), "custody says in review: readers no longer see it"
    assert workflow.state(archive, KK_OLD).holder == "aigerim"
