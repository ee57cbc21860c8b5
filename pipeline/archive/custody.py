"""Chain of custody: an append-only JSON Lines log per video, `<archive>/custody/<sha256>.jsonl`.

Berkeley Protocol practice: hash on arrival, never alter the original, record every tool that touched
it. Each line is one event with its UTC time and `prev`, the SHA-256 of the previous line's bytes
(newline included; 64 zeros on the first line), so editing, removing or reordering an earlier line
breaks the chain and `check_chain` names the line. Lines are written with O_APPEND under an exclusive
lock, then flushed to disk, so concurrent writers (a batch, the flow) never interleave. The chaining
(the `prev` hash, setting a torn line aside, checking the chain) is `pipeline.chain`'s, shared with the
access log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import __version__, chain, jsonl
from pipeline.names import display_name

DIR = "custody"
GENESIS = chain.GENESIS
TORN_HINT = "`testimony repair` sets it aside and logs that"
EVENTS = ("arrival", "stage", "resume", "reused", "failure", "export", "revise", "repair", "state")


def log_path(archive: str | Path, sha256: str) -> Path:
    """Where the custody log of the video with this SHA-256 lives."""
    return Path(archive) / DIR / f"{sha256}.jsonl"


def append(archive: str | Path, sha256: str, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event to the video's log and return it as written; all of its line, or nothing
    (jsonl.AppendError, an OSError).

    Creates `custody/` (0700) and the log (0600) on first use. `fields` must be JSON-serialisable;
    non-UTF-8 file names survive as JSON escapes. A last line a crash cut off is first set aside
    (`repair_torn_tail`), so the chain goes on from the last whole line.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown custody event {event!r}; one of {', '.join(EVENTS)}")
    path = log_path(archive, sha256)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with jsonl.locked(path, 0o600) as log:
        _repair_torn_tail(log, sha256)
        return _write(log, sha256, event, fields)


def _write(log: jsonl.Appender, sha256: str, event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One event chained to the log's last whole line (the caller holds the log's lock)."""
    record = {"time": chain.now(), "event": event, "prev": chain.prev_hash(log), "sha256": sha256, **fields}
    log.write(jsonl.encode(record, ascii_only=True))
    return record


def _repair_torn_tail(log: jsonl.Appender, sha256: str) -> dict[str, Any] | None:
    """A last line without its newline (a crash mid-write) is never a record: its bytes are kept aside in
    `custody/<sha256>.torn-<n>`, cut from the log, and a `repair` event says so, keeping the chain whole."""
    torn = chain.set_aside_torn_tail(log)
    if torn is None:
        return None
    return _write(log, sha256, "repair", {"repaired": "torn-tail", "tool": "testimony", "version": __version__,
                                           **torn})


def repair_torn_tail(archive: str | Path, sha256: str) -> dict[str, Any] | None:
    """Set aside a cut-off last line of the video's log now (see `_repair_torn_tail`); the event, or None."""
    path = log_path(archive, sha256)
    if not path.is_file():
        return None
    with jsonl.locked(path, 0o600) as log:
        return _repair_torn_tail(log, sha256)


def read(archive: str | Path, sha256: str) -> list[dict[str, Any]]:
    """Every event of the video's log, oldest first; an empty list when there is no log."""
    return jsonl.read(log_path(archive, sha256))


def check_chain(archive: str | Path, sha256: str) -> list[str]:
    """Problems with the log's integrity (empty when intact, or when there is no log)."""
    return verified(archive, sha256)[0]


def verified(archive: str | Path, sha256: str, noted: str | None = None) -> tuple[list[str], str | None]:
    """`check_chain`'s problems, and against a head `noted` earlier (`chain.holds`), with the log's head
    to keep elsewhere (None with a problem, or no log), from one read."""
    path = log_path(archive, sha256)
    if not path.is_file():
        return (["custody log: missing, but a head was noted for it: the log was removed"] if noted else []), None

    def names_this_video(record: dict[str, Any]) -> str | None:
        return None if record.get("sha256") == sha256 else f"names another video ({record.get('sha256')})"

    return chain.verified(path.read_bytes(), "custody log", TORN_HINT, names_this_video, noted)


def arrival_paths(archive: str | Path, sha256: str) -> list[Path]:
    """Where the original was seen on arrival, newest first, without repeats."""
    seen: list[Path] = []
    for event in reversed(read(archive, sha256)):
        if event.get("event") == "arrival" and event.get("path"):
            path = Path(event["path"])
            if path not in seen:
                seen.append(path)
    return seen


def preserved_paths(archive: str | Path, sha256: str) -> list[Path]:
    """Where the archive's read-only copies of the original were written (`originals.preserve`)."""
    return [Path(e["path"]) for e in read(archive, sha256)
            if e.get("event") == "stage" and e.get("name") == "preserve" and e.get("path")]


def last_manifest_sha256(archive: str | Path, sha256: str) -> str | None:
    """The manifest hash recorded when the bundle was last published or revised, if the log has one."""
    for event in reversed(read(archive, sha256)):
        published = event.get("event") == "stage" and event.get("name") == "publish"
        if (published or event.get("event") == "revise") and event.get("manifest_sha256"):
            return event["manifest_sha256"]
    return None


def revision_hashes(archive: str | Path, sha256: str) -> dict[int, str]:
    """Revision number -> SHA-256 of each revision a `revise` event logged."""
    return {e["revision"]: e["revision_sha256"] for e in read(archive, sha256)
            if e.get("event") == "revise" and "revision" in e}


def record_arrival(archive: str | Path, sha256: str, video: str | Path) -> None:
    """The video was hashed: where it was, its name, size and SHA-256."""
    video = Path(video)
    append(archive, sha256, "arrival", path=str(video.resolve()),
           file_name=display_name(video),
           size=video.stat().st_size, tool="testimony", version=__version__, algorithm="sha256")


def record_publish(archive: str | Path, sha256: str, bundle: str | Path, **fields: Any) -> dict[str, Any]:
    """The bundle was published: its folder and the SHA-256 of its manifest (which lists every file)."""
    from pipeline.archive.bundle import MANIFEST
    from pipeline.hashing import file_sha256

    bundle = Path(bundle)
    return append(archive, sha256, "stage", name="publish", tool="testimony", version=__version__,
                  bundle=bundle.name, manifest_sha256=file_sha256(bundle / MANIFEST), **fields)


RECOVERED = "found complete after an interrupted {}; logged now"
RUN_STAGES = ("transcribe", "diarize", "translate")  # what a run logs before it publishes


def _publish_pending(events: list[dict[str, Any]]) -> bool:
    """Whether a run's stages were logged after the last logged publish or revision, so a publish was
    under way: a bundle changed without that is not a killed publish, and is never logged as one."""
    for event in reversed(events):
        if event.get("event") == "revise" or event.get("event") == "stage" and event.get("name") == "publish":
            return False
        if event.get("event") == "stage" and event.get("name") in RUN_STAGES:
            return True
    return False


def record_unlogged_publish(archive: str | Path, sha256: str, bundle: str | Path) -> dict[str, Any] | None:
    """A run killed between publishing its bundle and logging it: log it now, if its files check out and
    a run was publishing; the event logged, or None.

    A bundle whose files do not match its own manifest is left unlogged, so `testimony verify` says so.
    """
    from pipeline.archive.bundle import MANIFEST, files_problems
    from pipeline.hashing import file_sha256

    bundle = Path(bundle)
    if last_manifest_sha256(archive, sha256) == file_sha256(bundle / MANIFEST):
        return None
    if not _publish_pending(read(archive, sha256)):
        return None
    source, problems = files_problems(bundle)
    if source == sha256 and not problems:
        return record_publish(archive, sha256, bundle, recovered=RECOVERED.format("run"))
    return None


def record_revise(archive: str | Path, sha256: str, bundle: Path, revision: Any, *, manifest: bool = True,
                  **fields: Any) -> dict[str, Any]:
    """A review's revision (`revisions.Revision`) was published in `bundle`: its hash, and the manifest's
    when it is the bundle's newest (`manifest`), so `verify` knows both."""
    from pipeline.archive.bundle import MANIFEST
    from pipeline.hashing import file_sha256

    if manifest:
        fields["manifest_sha256"] = file_sha256(bundle / MANIFEST)
    return append(archive, sha256, "revise", tool="testimony", version=__version__, bundle=bundle.name,
                  revision=revision.number, revision_sha256=revision.sha256, parent=revision.parent,
                  base=revision.base, author=revision.author, changed_segments=len(revision.changes), **fields)


def record_unlogged_revisions(archive: str | Path, sha256: str, bundle: str | Path) -> list[dict[str, Any]]:
    """A save killed between publishing its revision and logging it: log the revisions custody lacks,
    if they are the newest of one intact chain and the bundle's files match its manifest; the events.

    Logged revisions are never re-logged, and one that differs from its log stays a `verify` problem.
    """
    from pipeline.archive import revisions
    from pipeline.archive.bundle import files_problems

    bundle = Path(bundle)
    logged = revision_hashes(archive, sha256)
    if max(logged, default=0) >= len(revisions.stored_files(bundle)) - 1:
        return []  # the newest stored revision is logged (the usual case): no revision file is read
    chain, problems = revisions.read_chain(bundle)
    unlogged = [r for r in chain[1:] if r.number not in logged]
    if problems or not unlogged or unlogged[0].number <= max(logged, default=0):
        return []  # nothing to log, a broken chain, or a gap (not a save cut off at its end)
    if any(logged[r.number] != r.sha256 for r in chain[1:] if r.number in logged):
        return []
    source, problems = files_problems(bundle)
    if source != sha256 or problems:
        return []
    return [record_revise(archive, sha256, bundle, r, manifest=r is unlogged[-1], recovered=RECOVERED.format("save"))
            for r in unlogged]


def record_failure(archive: str | Path, sha256: str, stage: str, exc: BaseException) -> None:
    """Best effort: a failure to log a failure must not hide the failure itself."""
    try:
        append(archive, sha256, "failure", stage=stage, error=f"{type(exc).__name__}: {exc}")
    except Exception:
        pass


def record_extract(archive: str | Path, sha256: str, audio: Any, *, wav_sha256: str | None = None) -> None:
    """ffmpeg decoded the original's audio track to a WAV; the WAV's hash ties the later stages to it."""
    from pipeline.hashing import file_sha256
    from pipeline.stages.media import SAMPLE_RATE, ffmpeg_version

    append(archive, sha256, "stage", name="extract", tool="ffmpeg", version=ffmpeg_version(),
           parameters={"map": f"0:{audio.stream.index}", "channels": 1, "sample_rate": SAMPLE_RATE,
                       "codec": "pcm_s16le"},
           input_sha256=sha256, output_sha256=wav_sha256 or file_sha256(audio.wav_path),
           decoded_duration=round(audio.decoded_duration, 3), truncated=audio.truncated)


def record_transcribe(archive: str | Path, sha256: str, model_info: dict[str, Any], language: str | None,
                      segments: int) -> None:
    """The ASR engine, model (name, checksum where known) and decoding options used."""
    append(archive, sha256, "stage", name="transcribe", tool=model_info.get("engine"),
           version=model_info.get("engine_version"), model=model_info, language=language, segments=segments)


def record_translate(archive: str | Path, sha256: str, route: dict[str, Any] | None, translated: int) -> None:
    """The translation engine and package route; `route` None: no package, segments left untranslated."""
    append(archive, sha256, "stage", name="translate", tool=(route or {}).get("engine"), model=route,
           translated_segments=translated)
