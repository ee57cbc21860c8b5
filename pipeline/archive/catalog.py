"""The archive catalog: one SQLite file beside the bundles, with full-text search over every segment.

Bundles stay the source of truth for transcripts: `sync` rebuilds the videos and segments from them,
so a lost catalog loses no transcript (the arrivals log, though, lives only here). It sits at
`<archive>/catalog.sqlite`, owner-only since segment text is witness testimony, in WAL mode with a
busy timeout so the watcher's worker processes and the CLI can write and read at the same time.

Search is FTS5 with the `unicode61 remove_diacritics 2` tokenizer, which splits and case-folds
Cyrillic (Kazakh ә ғ қ ң ө ұ ү һ і included), Arabic script (Uyghur ئ ې ۆ ۈ ڭ …) and Latin alike.
Text and queries are NFKC-normalised first, with combining marks, tatweel and zero-width characters
dropped: the tokenizer treats a combining mark as a separator, so a decomposed hamza or an Arabic
presentation form would otherwise split or hide a word.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection, Iterator

from pipeline import config
from pipeline.archive.bundle import TRANSCRIPT, reviewed
from pipeline.archive.formats import speaker_name
from pipeline.errors import TestimonyError
from pipeline.names import display_path
from pipeline.sqlitex import immediate
from pipeline.textfold import fold
from pipeline.transcript import Transcript

CATALOG = "catalog.sqlite"
SCHEMA_VERSION = 3  # 2: segments.speaker and speaker_name; 3: the review columns of videos
BUSY_TIMEOUT_S = 60.0  # a worker waits this long for another's write before giving up
TOKENIZER = "unicode61 remove_diacritics 2"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS videos (
    sha256 TEXT PRIMARY KEY, id TEXT NOT NULL, file_name TEXT NOT NULL, language TEXT,
    detected_language TEXT, duration REAL, status TEXT NOT NULL, bundle TEXT, created TEXT,
    segments INTEGER NOT NULL DEFAULT 0, flags TEXT NOT NULL DEFAULT '[]', transcript_mtime INTEGER,
    review TEXT, checked INTEGER NOT NULL DEFAULT 0, flagged INTEGER NOT NULL DEFAULT 0,
    speakers INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS videos_id ON videos(id);
CREATE INDEX IF NOT EXISTS videos_file ON videos(file_name);
CREATE TABLE IF NOT EXISTS arrivals (
    n INTEGER PRIMARY KEY, sha256 TEXT, path TEXT NOT NULL, file_name TEXT NOT NULL,
    arrived_at TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS arrivals_sha ON arrivals(sha256);
CREATE TABLE IF NOT EXISTS segments (
    n INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, segment INTEGER NOT NULL, start REAL, "end" REAL,
    language TEXT, text TEXT, translation TEXT, original TEXT, english TEXT, speaker TEXT, speaker_name TEXT);
CREATE INDEX IF NOT EXISTS segments_sha ON segments(sha256);
CREATE VIRTUAL TABLE IF NOT EXISTS segments_fts USING fts5(
    original, english, content='segments', content_rowid='n', tokenize='{TOKENIZER}');
CREATE TRIGGER IF NOT EXISTS segments_ai AFTER INSERT ON segments BEGIN
    INSERT INTO segments_fts(rowid, original, english) VALUES (new.n, new.original, new.english);
END;
CREATE TRIGGER IF NOT EXISTS segments_ad AFTER DELETE ON segments BEGIN
    INSERT INTO segments_fts(segments_fts, rowid, original, english)
    VALUES ('delete', old.n, old.original, old.english);
END;
PRAGMA user_version = {SCHEMA_VERSION};
"""

# Version n to n + 1, run in order from a catalog's version up (0: a new file, made whole by the schema);
# each new column is filled by indexing every bundle again on the next sync (a NULL transcript_mtime
# never matches the file's).
_MIGRATE = {1: "ALTER TABLE segments ADD COLUMN speaker TEXT; ALTER TABLE segments ADD COLUMN speaker_name TEXT; "
               "UPDATE videos SET transcript_mtime = NULL;",
            2: "ALTER TABLE videos ADD COLUMN review TEXT; "
               "ALTER TABLE videos ADD COLUMN checked INTEGER NOT NULL DEFAULT 0; "
               "ALTER TABLE videos ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0; "
               "ALTER TABLE videos ADD COLUMN speakers INTEGER NOT NULL DEFAULT 0; "
               "UPDATE videos SET transcript_mtime = NULL;"}
# A bundle's review state: nobody saved a revision; someone did, or checked a segment; every segment checked.
MACHINE_DRAFT, IN_REVIEW, REVIEWED = "machine draft", "in review", "reviewed"
REVIEW_STATES = (MACHINE_DRAFT, IN_REVIEW, REVIEWED)


class CatalogError(TestimonyError):
    """A lookup the user can fix: the message names what matched, or what to run."""


@dataclass(frozen=True)
class Video:
    sha256: str
    id: str
    file_name: str
    language: str | None
    detected_language: str | None
    duration: float | None
    status: str  # done, or failed when a file never produced a bundle
    bundle: str | None  # relative to the archive
    created: str | None
    segments: int
    flags: list[str] = field(default_factory=list)
    review: str | None = None  # one of REVIEW_STATES for a bundle; None for a failed video
    checked: int = 0  # segments a person checked
    flagged: int = 0  # segments with at least one flag
    speakers: int = 0  # distinct speaker labels

    @property
    def state(self) -> str:
        """What `list` shows: the review state of a bundle, else the processing status (failed)."""
        return self.review if self.status == "done" and self.review else self.status


@dataclass(frozen=True)
class Hit:
    id: str
    sha256: str
    file_name: str
    language: str | None
    segment: int
    start: float
    end: float
    original: str
    english: str | None
    snippet: str  # the matching text, cut short around the match, match marked
    bundle: str | None
    speaker: str | None = None  # the segment's speaker as the transcript names it (S1, or a name)


def catalog_path(archive: str | Path) -> Path:
    return Path(archive) / CATALOG


def _setup(con: sqlite3.Connection) -> None:
    """WAL and the schema; retried because switching a brand-new file to WAL does not wait on locks."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                with immediate(con):  # the version is read again under the write lock: another
                    version = con.execute("PRAGMA user_version").fetchone()[0]  # process may have migrated
                    steps = "".join(_MIGRATE[n] for n in range(version, SCHEMA_VERSION)) if version else ""
                    for statement in _statements(steps + _SCHEMA if version < SCHEMA_VERSION else ""):
                        con.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _statements(script: str) -> list[str]:
    """A script cut into whole statements (a trigger keeps the semicolons of its body), so a migration
    runs statement by statement inside one transaction, which executescript cannot do."""
    out, current = [], ""
    for part in script.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current)
            current = ""
    return out


@contextmanager
def connect(archive: str | Path) -> Iterator[sqlite3.Connection]:
    """An open catalog (created owner-only on first use), closed on exit."""
    path = catalog_path(archive)
    config.private_dirs(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite gives -wal/-shm the same mode
        os.chmod(path, config.file_mode())
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
        con.row_factory = sqlite3.Row  # synchronous stays FULL: the arrivals log is a custody record
        con.create_function("casefold", 1, lambda text: text.casefold() if text else text, deterministic=True)
        _setup(con)
        yield con




def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _relative(archive: Path, bundle: Path) -> str:
    try:
        return str(bundle.resolve().relative_to(archive.resolve()))
    except ValueError:
        return str(bundle.resolve())


def review_state(segments: int, checked: int, revised: bool) -> str:
    """The one rule for a bundle's review state, kept in the catalog and shown by `list` and the workspace."""
    if segments and checked == segments:
        return REVIEWED
    return IN_REVIEW if revised or checked else MACHINE_DRAFT


def _index(con: sqlite3.Connection, archive: Path, bundle: Path) -> None:
    path = bundle / TRANSCRIPT
    mtime = path.stat().st_mtime_ns
    t = Transcript.load(path)
    sha = t.source.sha256
    checked = sum(bool(s.checked) for s in t.segments)
    state = review_state(len(t.segments), checked, reviewed(bundle))
    speakers = len({s.speaker for s in t.segments if s.speaker})
    with immediate(con):
        _index_segments(con, sha, [(sha, s.id, s.start, s.end, t.language, s.text, s.translation, fold(s.text or ""),
                                    fold(s.translation or (s.text if t.language == "en" else "") or ""), s.speaker,
                                    speaker_name(t, s)) for s in t.segments])
        con.execute("INSERT OR REPLACE INTO videos (sha256, id, file_name, language, detected_language, duration, "
                    "status, bundle, created, segments, flags, transcript_mtime, review, checked, flagged, speakers)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (sha, sha[:12], t.source.file_name, t.language, t.detected_language, t.source.duration,
                     "done", _relative(archive, bundle), t.created, len(t.segments), json.dumps(t.flags), mtime,
                     state, checked, sum(bool(s.flags) for s in t.segments), speakers))


_SEGMENT_COLUMNS = ('sha256, segment, start, "end", language, text, translation, original, english, speaker, '
                    'speaker_name')


def _index_segments(con: sqlite3.Connection, sha: str, rows: list[tuple]) -> None:
    """Make the video's segment rows `rows`, touching only those that differ: a review save changes a
    few segments of hundreds, and rewriting them all (and their full-text entries) wrote megabytes."""
    kept: dict[tuple, list[int]] = {}
    for row in con.execute(f"SELECT n, {_SEGMENT_COLUMNS} FROM segments WHERE sha256 = ?", (sha,)):
        kept.setdefault(tuple(row)[1:], []).append(row[0])
    new = []
    for row in rows:
        if kept.get(row):
            kept[row].pop()  # this one is already there, as it is
        else:
            new.append(row)
    con.executemany("DELETE FROM segments WHERE n = ?", [(n,) for ns in kept.values() for n in ns])
    con.executemany(f"INSERT INTO segments ({_SEGMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", new)


def index_bundle(archive: str | Path, bundle: str | Path) -> None:
    """Add or replace the video of `bundle` from its transcript.json, so list/get/search see it at once."""
    archive = Path(archive)
    with connect(archive) as con:
        _index(con, archive, Path(bundle))


def index_or_warn(archive: str | Path, bundle: str | Path) -> list[str]:
    """Index a bundle just written; a catalog failure is only a warning, as the bundle is safe on disk."""
    try:
        index_bundle(archive, bundle)
    except (sqlite3.Error, OSError) as exc:
        return [f"the bundle was saved, but the archive catalog could not be updated ({exc}); run "
                "`testimony list` to re-sync it"]
    return []


def record_arrival(archive: str | Path, sha256: str | None, path: str | Path, outcome: str) -> None:
    """Log one drop into the inbox (`processed`, `duplicate-of <id>`, `failed: why`) for the custody record.

    A failure with a known hash also lists the video as failed, until a bundle for it is indexed.
    """
    shown = display_path(path)
    name = Path(shown).name
    with connect(archive) as con, immediate(con):
        con.execute("INSERT INTO arrivals (sha256, path, file_name, arrived_at, outcome) VALUES (?,?,?,?,?)",
                    (sha256, shown, name, _now(), outcome))
        if sha256 and outcome.startswith("failed"):
            con.execute("INSERT OR IGNORE INTO videos (sha256, id, file_name, status, created) "
                        "VALUES (?,?,?,'failed',?)", (sha256, sha256[:12], name, _now()))


def list_arrivals(archive: str | Path) -> list[dict]:
    """Every drop in arrival order: what came in, when, and what became of it."""
    with connect(archive) as con:
        return [dict(r) for r in con.execute("SELECT sha256, path, file_name, arrived_at, outcome "
                                             "FROM arrivals ORDER BY n")]


def sync(archive: str | Path, on_error: Callable[[Path, Exception], None] | None = None) -> int:
    """Index bundles the catalog lacks or holds an older copy of; forget those deleted from disk.

    Bundles written before the catalog existed, or while it was unwritable, show up this way. Returns
    the number of entries added, refreshed or dropped; an unreadable bundle goes to `on_error`.
    """
    archive = Path(archive)
    changed = 0
    with connect(archive) as con:
        known = {r["bundle"]: r["transcript_mtime"] for r in con.execute("SELECT bundle, transcript_mtime "
                                                                         "FROM videos WHERE bundle IS NOT NULL")}
        seen = set()
        for bundle, rel, mtime in _transcripts(archive):
            seen.add(rel)
            try:
                if known.get(rel) != mtime:
                    _index(con, archive, bundle)
                    changed += 1
            except (OSError, ValueError, KeyError, TypeError) as exc:
                if on_error:
                    on_error(bundle, exc)
        for rel in known.keys() - seen:
            if not (archive / rel / TRANSCRIPT).is_file():
                with immediate(con):
                    for (sha,) in con.execute("SELECT sha256 FROM videos WHERE bundle = ?", (rel,)).fetchall():
                        con.execute("DELETE FROM segments WHERE sha256 = ?", (sha,))
                        con.execute("DELETE FROM videos WHERE sha256 = ?", (sha,))
                        changed += 1
    return changed


def _transcripts(archive: Path) -> Iterator[tuple[Path, str, int]]:
    """(folder, its name in the catalog, transcript.json's mtime) of each bundle, by name: one stat a
    bundle, so the workspace's first page can afford a sync of ten thousand. Staging folders, the
    catalog itself and stray files are passed over."""
    with os.scandir(archive) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            found = os.stat(os.path.join(entry.path, TRANSCRIPT))
        except OSError:
            continue
        if stat.S_ISREG(found.st_mode):
            bundle = Path(entry.path)
            yield bundle, _relative(archive, bundle) if entry.is_symlink() else entry.name, found.st_mtime_ns


def _video(row: sqlite3.Row) -> Video:
    data = dict(row)
    data.pop("transcript_mtime", None)
    return Video(**{**data, "flags": json.loads(data["flags"] or "[]")})


def list_videos(archive: str | Path) -> list[Video]:
    """Every video the catalog knows, by file name."""
    with connect(archive) as con:
        return [_video(r) for r in con.execute("SELECT * FROM videos ORDER BY file_name, sha256")]


SORTABLE = ("file_name", "language", "duration", "review", "flagged", "checked", "segments", "speakers", "id")


def bundles_page(archive: str | Path, *, offset: int = 0, limit: int = 100, sort: str = "file_name",
                 descending: bool = False, review: str | None = None, words: str = "",
                 languages: Collection[str] | None = None, only: Collection[str] | None = None
                 ) -> tuple[list[Video], int]:
    """One page of the archive's bundles and how many match: filtered, sorted and cut by SQLite, so a
    page costs the same in an archive of ten bundles or ten thousand. `words` is looked for, in any
    case, in the file name and language; `review` keeps one of REVIEW_STATES; `languages` and `only`
    (SHA-256s) keep what a person's role lets them see."""
    if sort not in SORTABLE:
        raise CatalogError(f"cannot sort by {sort!r}: choose one of {', '.join(SORTABLE)}")
    where, params = ["status = 'done'", "bundle IS NOT NULL"], []
    for column, allowed in (("language", languages), ("sha256", only)):
        if allowed is not None:
            where.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(allowed)))
    if review:
        where.append("review = ?")
        params.append(review)
    if words.strip():
        where.append("instr(casefold(file_name || ' ' || coalesce(language, '')), ?) > 0")
        params.append(words.strip().casefold())
    clause = " AND ".join(where)
    order = f"{sort} {'DESC' if descending else 'ASC'}, file_name, sha256"
    with connect(archive) as con:
        total = con.execute(f"SELECT count(*) FROM videos WHERE {clause}", params).fetchone()[0]
        rows = con.execute(f"SELECT * FROM videos WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                           [*params, max(0, limit), max(0, offset)]).fetchall()
    return [_video(r) for r in rows], total


def recent_videos(archive: str | Path, limit: int) -> list[Video]:
    """The `limit` videos indexed or changed last, newest first: a page, whatever the archive's size.

    A video's row is replaced whenever it is indexed again, so the newest rowid is the latest change.
    """
    with connect(archive) as con:
        return [_video(r) for r in con.execute("SELECT * FROM videos ORDER BY rowid DESC LIMIT ?", (limit,))]


def status_counts(archive: str | Path) -> dict[str, int]:
    """How many videos have each status, counted by SQLite (no row reaches Python)."""
    with connect(archive) as con:
        return dict(con.execute("SELECT status, count(*) FROM videos GROUP BY status ORDER BY status"))


def resolve(archive: str | Path, key: str) -> Video:
    """The one video `key` names: an id or other SHA-256 prefix (4+ hex digits), a full SHA-256, a file
    name or a bundle folder name. Ambiguity and no match are errors that say what to type instead."""
    key = key.strip()
    name = Path(key).name
    with connect(archive) as con:
        rows = []
        if len(key) >= 4 and all(c in "0123456789abcdef" for c in key.lower()):
            rows = con.execute("SELECT * FROM videos WHERE sha256 LIKE ? ORDER BY file_name",
                               (key.lower() + "%",)).fetchall()
        if not rows:
            rows = con.execute("SELECT * FROM videos WHERE file_name IN (?, ?) OR bundle = ? ORDER BY sha256",
                               (key, name, name)).fetchall()
        if not rows:  # suggest names that hold what was typed, never pick one silently
            near = [f"{r['id']} {r['file_name']}" for r in con.execute("SELECT id, file_name FROM videos")
                    if key.casefold() in r["file_name"].casefold()][:5]
    if not rows and 0 < len(key) < 4 and all(c in "0123456789abcdef" for c in key.lower()):
        raise CatalogError(f"{key!r} is too short to name a video: give at least 4 characters of its id "
                           "(`testimony list` shows ids)")
    if not rows:
        hint = f"; did you mean {'; '.join(near)}?" if near else "; `testimony list` shows ids and file names"
        raise CatalogError(f"no video in {archive} matches {key!r}{hint}")
    if len(rows) > 1:
        listed = "; ".join(f"{r['id']} {r['file_name']}" for r in rows)
        raise CatalogError(f"{key!r} matches {len(rows)} videos ({listed}): give the id instead")
    return _video(rows[0])


def fts_query(query: str) -> str:
    """The user's words as FTS5 strings, all required; a trailing * makes a word a prefix.

    Every word is quoted (inner quotes doubled), so AND, NEAR, parentheses, hyphens or quotes in the
    input are searched as text and can never be read as FTS5 syntax. Empty when nothing is searchable.
    """
    terms = []
    for word in fold(query).split():
        prefix = word.endswith("*")
        word = word.rstrip("*")
        if any(ch.isalnum() for ch in word):
            terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


def search(archive: str | Path, query: str, lang: str | None = None, *, limit: int | None = 100,
           mark: tuple[str, str] = ("**", "**"), speaker: str | None = None) -> list[Hit]:
    """Segments whose text holds every word of `query`, best first.

    `lang` "en" searches English (translations, and the speech of English videos); a source language
    code (kk, ug, ...) searches the original text of videos in that language; None searches both.
    `speaker` keeps the segments of one speaker, by label (S1) or name (Witness), in any case.
    """
    terms = fts_query(query)
    if not terms:
        return []
    lang = lang.lower() if lang else None
    column = {None: -1, "en": 1}.get(lang, 0)
    match = {-1: terms, 1: f"english : ({terms})", 0: f"original : ({terms})"}[column]
    sql = ("SELECT v.id, v.sha256, v.file_name, s.language, s.segment, s.start, s.\"end\", s.text AS original, "
           "COALESCE(s.translation, CASE WHEN s.language = 'en' THEN s.text END) AS english, "
           "snippet(segments_fts, ?, ?, ?, '…', 16) AS snippet, v.bundle, s.speaker_name AS speaker "
           "FROM segments_fts JOIN segments s ON s.n = segments_fts.rowid JOIN videos v ON v.sha256 = s.sha256 "
           "WHERE segments_fts MATCH ?" + (" AND s.language = ?" if column == 0 else "") +
           (" AND ? IN (lower(s.speaker), lower(s.speaker_name))" if speaker else "") +
           " ORDER BY rank, v.file_name, s.start LIMIT ?")
    params = ([column, mark[0], mark[1], match] + ([lang] if column == 0 else [])
              + ([speaker.strip().lower()] if speaker else []) + [limit or -1])
    with connect(archive) as con:
        return [Hit(**dict(row)) for row in con.execute(sql, params)]


def speaker_known(archive: str | Path, speaker: str) -> bool:
    """Whether any segment of the archive has this speaker, by label or name in any case, as `search` matches
    them: a search for a speaker nobody is should say so, not hint at suffixes."""
    sql = "SELECT 1 FROM segments WHERE ? IN (lower(speaker), lower(speaker_name)) LIMIT 1"
    with connect(archive) as con:
        return con.execute(sql, [speaker.strip().lower()]).fetchone() is not None
