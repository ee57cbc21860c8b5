"""The archive listing from catalog columns: review state, paging, filters, an old catalog migrated, and
`testimony list` saying where review stands. Real SQLite, real bundles, the real workspace app."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipeline.archive import catalog
from pipeline.archive.bundle import find_bundle
from pipeline.cli.main import main
from pipeline.review import accounts, revisions, server
from pipeline.review.save import save_revision
from pipeline.run import process

from .test_catalog import transcript

KK = ["Менің әкем лагерьде болды", "Екі жыл болды", "Ол қайтып келмеді"]
USER, PASSWORD = "reviewer", "listing password"


def _publish(archive: Path, name: str, speakers: tuple[str, ...] = ()) -> str:
    t = transcript(name, "kk", KK, ["My father was in the camp", "Two years passed", "He did not come back"])
    for seg, who in zip(t.segments, speakers):
        seg.speaker = who
    process.publish_transcript(archive, t)
    return t.source.sha256


def _save(archive: Path, sha: str, texts: dict[int, str] | None = None, **checked: bool) -> None:
    """Mark the segments named s0, s1 ... checked (or not), and give some new text, in one save."""
    newest = revisions.newest(find_bundle(archive, sha))
    segments = [{**s, "checked": checked.get(f"s{s['id']}", s.get("checked", False)),
                 "text": (texts or {}).get(s["id"], s["text"])} for s in newest.segments]
    save_revision(archive, sha, base=newest.sha256, author="Aigul", segments=segments)


@pytest.fixture
def archive(tmp_path) -> Path:
    root = tmp_path / "archive"
    for n in range(5):
        _publish(root, f"witness {n}.mp4", speakers=("S1", "S2", "S1") if n == 0 else ())
    _publish(root, "Куә сөзі.mp4")
    catalog.sync(root)
    return root


def _sha(name: str) -> str:
    return hashlib.sha256(f"{name}/kk".encode()).hexdigest()


def test_a_save_updates_the_review_state_in_the_catalog_and_list(archive, capsys):
    states = {v.file_name: v.review for v in catalog.list_videos(archive)}
    assert set(states.values()) == {catalog.MACHINE_DRAFT}
    _save(archive, _sha("witness 1.mp4"), s0=True)
    _save(archive, _sha("witness 2.mp4"), s0=True, s1=True, s2=True)
    videos = {v.file_name: v for v in catalog.list_videos(archive)}  # no sync: the save indexed it
    assert (videos["witness 1.mp4"].review, videos["witness 1.mp4"].checked) == (catalog.IN_REVIEW, 1)
    assert (videos["witness 2.mp4"].review, videos["witness 2.mp4"].checked) == (catalog.REVIEWED, 3)
    assert videos["witness 0.mp4"].speakers == 2
    rows = "SELECT n, segment, text FROM segments WHERE sha256 = ? ORDER BY segment"
    with catalog.connect(archive) as con:
        before = con.execute(rows, (_sha("witness 2.mp4"),)).fetchall()
    _save(archive, _sha("witness 2.mp4"), s1=False)  # a segment unchecked again: back in review
    with catalog.connect(archive) as con:
        after = con.execute(rows, (_sha("witness 2.mp4"),)).fetchall()
    assert [tuple(r)[1:] for r in after] == [tuple(r)[1:] for r in before]
    assert [a["n"] == b["n"] for a, b in zip(after, before)] == [True, True, True], \
        "a change the catalog does not keep (checked) rewrites no segment row"
    _save(archive, _sha("witness 2.mp4"), texts={1: "Екі жыл өтті"})
    with catalog.connect(archive) as con:
        edited = con.execute(rows, (_sha("witness 2.mp4"),)).fetchall()
    assert [a["n"] == b["n"] for a, b in zip(edited, after)] == [True, False, True], "only the edited row"
    assert [h.segment for h in catalog.search(archive, "өтті")] == [1]
    assert _sha("witness 2.mp4") not in {h.sha256 for h in catalog.search(archive, "жыл болды")}
    assert next(v.review for v in catalog.list_videos(archive) if v.file_name == "witness 2.mp4") == catalog.IN_REVIEW

    assert main(["list", "--out", str(archive)]) == 0
    rows = {line.rsplit("  ", 1)[-1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "in review" in rows["witness 1.mp4"] and "in review" in rows["witness 2.mp4"]
    assert "machine draft" in rows["witness 3.mp4"]
    assert not any(" done " in row for row in rows.values()), "a bundle's status is its review state"


def test_pages_filters_and_sorts_in_sqlite(archive):
    _save(archive, _sha("witness 3.mp4"), s0=True)
    first, total = catalog.bundles_page(archive, offset=0, limit=4)
    rest, again = catalog.bundles_page(archive, offset=4, limit=4)
    assert (total, again, len(first), len(rest)) == (6, 6, 4, 2)
    names = [v.file_name for v in first + rest]
    assert names == sorted(names) and len(set(names)) == 6
    assert [v.file_name for v in catalog.bundles_page(archive, sort="file_name", descending=True)[0]][0] == \
        "Куә сөзі.mp4"
    assert [v.file_name for v in catalog.bundles_page(archive, words="КУӘ")[0]] == ["Куә сөзі.mp4"], \
        "any case, in Cyrillic too"
    assert [v.file_name for v in catalog.bundles_page(archive, review=catalog.IN_REVIEW)[0]] == ["witness 3.mp4"]
    with pytest.raises(catalog.CatalogError, match="cannot sort by 'segments; DROP TABLE videos'"):
        catalog.bundles_page(archive, sort="segments; DROP TABLE videos")


def test_an_old_catalog_gains_the_columns_and_is_filled_on_sync(archive):
    """A catalog written by the code before the review columns (schema 2) opens, migrates and fills."""
    path = catalog.catalog_path(archive)
    with sqlite3.connect(path) as con:  # back to version 2's videos table, rows kept
        con.executescript("ALTER TABLE videos DROP COLUMN review; ALTER TABLE videos DROP COLUMN checked; "
                          "ALTER TABLE videos DROP COLUMN flagged; ALTER TABLE videos DROP COLUMN speakers; "
                          "PRAGMA user_version = 2;")
    con.close()
    assert [v.review for v in catalog.list_videos(archive)] == [None] * 6, "migrated, not yet filled"
    with catalog.connect(archive) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == catalog.SCHEMA_VERSION
    assert catalog.sync(archive) == 6, "every bundle indexed again to fill the new columns"
    assert {v.review for v in catalog.list_videos(archive)} == {catalog.MACHINE_DRAFT}
    assert catalog.search(archive, "лагерьде"), "search still works on the migrated catalog"


def _client(archive: Path) -> TestClient:
    if accounts.get(archive, USER) is None:
        accounts.add(archive, USER, "admin", password=PASSWORD, must_change=False)
    app = server.build_app(archive, origin="http://testserver")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return TestClient(app, headers={"Authorization": f"Basic {token}"})


def test_the_workspace_list_is_paged_from_the_catalog(archive):
    _save(archive, _sha("witness 0.mp4"), s0=True)
    client = _client(archive)
    body = client.get("/api/bundles", params={"limit": 2}).json()
    assert (body["total"], body["offset"], len(body["bundles"])) == (6, 0, 2)
    assert body["bundles"][0] == {"id": _sha("witness 0.mp4")[:12], "file_name": "witness 0.mp4", "language": "kk",
                                  "duration": 18.0, "segments": 3, "flagged": 0, "checked": 1, "speakers": 2,
                                  "state": "in review", "workflow": "draft", "holder": None}
    last = client.get("/api/bundles", params={"offset": 4, "limit": 2}).json()["bundles"]
    assert [r["file_name"] for r in last] == ["witness 4.mp4", "Куә сөзі.mp4"]
    by_state = client.get("/api/bundles", params={"state": "in review", "sort": "state"}).json()
    assert [r["file_name"] for r in by_state["bundles"]] == ["witness 0.mp4"]
    single = client.get(f"/api/bundles/{_sha('witness 0.mp4')[:12]}").json()
    assert (single["state"], single["speakers"]) == ("in review", 2), "the editor's summary says the same"
    for bad in ({"limit": 0}, {"offset": -1}, {"limit": "x"}, {"state": "done"}, {"sort": "sha256"}):
        response = client.get("/api/bundles", params=bad)
        assert response.status_code == 400 and response.json()["error"], bad


def test_a_bundle_copied_in_by_hand_shows_on_the_first_page(archive, tmp_path):
    other = tmp_path / "other"
    sha = _publish(other, "brought on a USB stick.mp4")
    bundle = find_bundle(other, sha)
    bundle.rename(archive / bundle.name)
    client = _client(archive)
    assert client.get("/api/bundles", params={"offset": 0}).json()["total"] == 7
