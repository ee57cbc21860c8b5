"""`testimony verify`, `repair`, `export` and `clean`: check bundles against their hashes (reading only), put
right what a crash left, pack one for others, remove abandoned work."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config
from pipeline.archive import access, catalog, custody, integrity
from pipeline.archive.bundle import files_problems, find_bundle, source_of
from pipeline.archive.integrity import bundles_in, export_bundle, verify_bundle
from pipeline.archive.locks import bundle_lock
from pipeline.cli.errors import guarded
from pipeline.hashing import file_sha256

OUT_HELP = "archive root (default: $TESTIMONY_OUT, else transcripts/)"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register verify and export on the `testimony` parser."""
    verify = sub.add_parser("verify", help="re-hash bundles against their manifests, check the custody log "
                            "and the original video (and, for the whole archive, the access log's chain); exit 1 "
                            "on any problem")
    verify.add_argument("video", nargs="?", help="id, SHA-256, file name or the video file itself "
                        "(default: every bundle in the archive)")
    verify.add_argument("--out", help=OUT_HELP)
    verify.add_argument("--reproduce", action="store_true",
                        help="also re-derive the transcript from the kept original with the recorded models "
                             "and options, and compare it segment by segment (takes as long as the run)")
    verify.add_argument("--original", type=Path, help="the original video to re-hash (default: its arrival "
                        "path in the custody log, when it is still there)")
    verify.add_argument("--access-head", type=_head, metavar="N:SHA256", help="the access log's head that an "
                        "earlier verify printed and you kept elsewhere: a later edit or removal of any line up to "
                        "it, the last included, is a problem (whole archive only)")
    verify.add_argument("--custody-head", type=_head, metavar="N:SHA256", help="the same for the named video's "
                        "custody log")
    verify.add_argument("--public", type=Path, metavar="FOLDER",
                        help="check a public folder `export --redact` wrote: its files, and that the archive's "
                             "custody log recorded it")

    export = sub.add_parser("export", help="one bundle, its custody log and SHA256SUMS (optionally the "
                            "original) in a zip another party can check with `sha256sum -c`")
    export.add_argument("video", help="id, SHA-256, file name or the video file itself")
    export.add_argument("-o", "--output", type=Path, required=True, help="the zip file to write")
    export.add_argument("--out", help=OUT_HELP)
    export.add_argument("--with-original", action="store_true",
                        help="include the original video, read from its arrival path")
    export.add_argument("--formats", type=_formats, default=[], metavar="LIST",
                        help="also documents of the testimony in the zip, comma-separated: docx,csv,xlsx,ohms "
                             "(under documents/, listed in SHA256SUMS; the bundle is unchanged)")
    export.add_argument("--redact", type=Path, metavar="LIST",
                        help="write a public folder at --output instead: every name or phrase of LIST (one a line, "
                             "any script, inflected forms included) replaced by [REDACTED]; no custody log, original "
                             "name or hash; the archive logs what was removed")
    export.add_argument("--media", choices=("audio", "video"),
                        help="with --redact: also the audio or the video, the redacted words muted, no metadata tags")

    repair = sub.add_parser("repair", help="put right what a crash left (a publish killed half way, a custody "
                            "line cut off, work done but never logged), each repair logged in custody; `verify` "
                            "never writes")
    repair.add_argument("video", nargs="?", help="id, SHA-256, file name or the video file itself "
                        "(default: the whole archive)")
    repair.add_argument("--out", help=OUT_HELP)

    clean = sub.add_parser("clean", help="remove work folders (extracted audio, checkpoints) that failed runs "
                           "left and nobody came back to; each removal is logged in custody")
    clean.add_argument("--out", help=OUT_HELP)
    clean.add_argument("--older-than", type=float, default=7.0, metavar="DAYS",
                       help="untouched for this many days (default: 7; a run in progress touches its folder "
                            "every chunk)")
    clean.add_argument("--adapt-runs", action="store_true", help="also remove unfinished `testimony adapt` runs "
                       "idle that long (kept otherwise: the same command resumes them); finished runs, whose "
                       "model is in .models/, are always removed")


def _head(text: str) -> str:
    """`N:SHA256` as verify prints it; anything else is a usage error (exit 2) saying what to give."""
    count, _, digest = text.partition(":")
    if not (count.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise argparse.ArgumentTypeError(f"{text!r}: give the head as verify printed it, N:SHA256 (a line count, "
                                         "a colon, 64 hex digits)")
    return text


def _formats(text: str) -> list[str]:
    """`docx,xlsx` -> ["docx", "xlsx"]; an unknown name is a usage error (exit 2) that lists the known."""
    from pipeline.archive.documents import DocumentFormatError, check_format

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    try:
        for name in names:
            check_format(name)
    except DocumentFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return list(dict.fromkeys(names))


def _archive(out: str | None) -> Path:
    archive = config.archive_dir(out)
    if not archive.is_dir():
        raise catalog.CatalogError(f"no archive at {archive}: pass --out or set TESTIMONY_OUT")
    return archive


def _resolve(archive: Path, key: str) -> tuple[Path, Path | None]:
    """(bundle folder, the video file when `key` is one) for an id, SHA-256, file name or file."""
    given = Path(key)
    if given.is_file():
        return _bundle_of_file(archive, given), given
    if (archive / key).is_dir() and not key.startswith("."):
        return archive / key, None
    catalog.sync(archive)
    video = catalog.resolve(archive, key)
    if video.bundle is None:
        raise catalog.CatalogError(f"{video.id} has no bundle: its processing {video.status}")
    return archive / video.bundle, None


def _bundle_of_file(archive: Path, video: Path) -> Path:
    sha256 = file_sha256(video)
    bundle = find_bundle(archive, sha256)
    if bundle is None:
        raise catalog.CatalogError(f"{video} (sha256 {sha256}) has no bundle in {archive}")
    return bundle


def _resolve_reading(archive: Path, key: str) -> tuple[Path, Path | None]:
    """`_resolve` without touching the archive (no catalog update): the bundle folders on disk are matched
    by id or SHA-256 prefix, folder name or the file name their transcript names."""
    given = Path(key)
    if given.is_file():
        return _bundle_of_file(archive, given), given
    if (archive / key).is_dir() and not key.startswith("."):
        return archive / key, None
    key = key.strip()
    bundles = bundles_in(archive)
    found = []
    if len(key) >= 4 and all(c in "0123456789abcdef" for c in key.lower()):
        found = [b for b in bundles if b.name[:12].startswith(key.lower()[:12])
                 and (len(key) <= 12 or (source_of(b).get("sha256") or "").startswith(key.lower()))]
    if not found:
        found = [b for b in bundles if source_of(b).get("file_name") in (key, given.name)]
    if not found:
        raise catalog.CatalogError(f"no bundle in {archive} matches {key!r}: give its id (4 or more characters), "
                                   "SHA-256, file name or bundle folder (`testimony list` shows them)")
    if len(found) > 1:
        raise catalog.CatalogError(f"{key!r} matches {len(found)} bundles ({'; '.join(b.name for b in found)}): "
                                   "give the bundle folder's name instead")
    return found[0], None


_guarded = guarded


@_guarded
def cmd_verify(args: argparse.Namespace) -> int:
    """One line per problem on standard output, `<bundle>: ok` per clean bundle; exit 1 on any problem."""
    archive = _archive(args.out)  # read only: a publish killed half way is reported; `repair` puts it right
    leftovers, heads = [], {}
    if args.video:
        bundle, video_file = _resolve_reading(archive, args.video)
        targets = [(bundle, args.original or video_file)]
    elif args.original:
        print("error: --original needs the video it belongs to: testimony verify ID --original PATH",
              file=sys.stderr)
        return 2
    else:
        logged, heads["--access-head"] = access.verified(archive, args.access_head)  # the archive's, not a bundle's
        leftovers = integrity.leftovers(archive) + logged
        targets = [(bundle, None) for bundle in bundles_in(archive)]
        if not targets and not leftovers:
            print(f"no bundles in {archive}", file=sys.stderr)
            return 0
    if (wrong := _misplaced(args)) is not None:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    failed = _report_leftovers(leftovers)
    for bundle, original in targets:
        with bundle_lock(archive, bundle.name, shared=True):  # no save or publish half way through
            report = verify_bundle(archive, bundle, original)
        problems = list(report.problems)
        if args.video and report.sha256:  # the custody chain is the report's; here the head, from one read
            held, heads["--custody-head"] = custody.verified(archive, report.sha256, args.custody_head)
            problems += [named for named in (f"{bundle.name}: {problem}" for problem in held) if named not in problems]
        if args.public and report.sha256:
            from pipeline.archive.public import verify_public

            problems += verify_public(archive, report.sha256, args.public)
        if args.reproduce:
            from pipeline.run.reproduce import reproduce

            found = reproduce(archive, bundle, original)
            problems += found
            if not found:
                print(f"note: {bundle.name}: every segment re-derived from the original matches", file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{bundle.name}: ok")
        failed += bool(problems)
    print(f"verified {len(targets)} bundle(s): {failed} with problems", file=sys.stderr)
    _print_heads(heads)
    return 1 if failed else 0


def _misplaced(args: argparse.Namespace) -> str | None:
    """An option that belongs to the other kind of verify (one video, or the whole archive)."""
    if args.public and not args.video:
        return "--public needs the video it was made from: testimony verify ID --public FOLDER"
    if args.custody_head and not args.video:
        return "--custody-head needs the video whose log it is: testimony verify ID --custody-head N:SHA256"
    if args.access_head and args.video:
        return "--access-head checks the whole archive's access log: testimony verify --access-head N:SHA256"
    return None


def _print_heads(heads: dict[str, str | None]) -> None:
    """The heads to keep somewhere else (a note, a partner's mail), each from the bytes just checked and
    only when its log had no problem: a later verify given one shows an edit or removal of any line up
    to it, which the chain alone cannot show for its last lines."""
    for option, found in heads.items():
        if found:
            print(f"note: to notice a later edit or removal of these lines, keep elsewhere: {option} {found}",
                  file=sys.stderr)


def _report_leftovers(leftovers: list[str]) -> int:
    """Print what killed publishes left (problems on standard output, notes on standard error); 1 if a problem."""
    for line in leftovers:
        print(line, file=sys.stderr if line.startswith("note: ") else sys.stdout)
    return int(any(not line.startswith("note: ") for line in leftovers))


@_guarded
def cmd_repair(args: argparse.Namespace) -> int:
    """One line per repair on standard output (each also logged in custody); the count on standard error."""
    from pipeline.archive.repair import repair

    archive = _archive(args.out)
    sha256 = None
    if args.video:
        bundle, _video = _resolve(archive, args.video)
        sha256 = source_of(bundle).get("sha256") or files_problems(bundle)[0]
    done = repair(archive, sha256)
    for line in done:
        print(line)
    print(f"{len(done)} repair(s); `testimony verify` checks the rest", file=sys.stderr)
    return 0


@_guarded
def cmd_export(args: argparse.Namespace) -> int:
    """Write the zip (or, with --redact, the public folder); print its path."""
    if args.redact is None and args.media:
        print("error: --media goes with --redact (an evidence export can hold the original: --with-original)",
              file=sys.stderr)
        return 2
    if args.redact is not None and args.formats:
        print("error: --formats goes with an evidence export (documents name the source; a public folder must not)",
              file=sys.stderr)
        return 2
    if args.redact is not None and args.with_original:
        print("error: a redacted export never holds the original; use --media audio|video for muted media",
              file=sys.stderr)
        return 2
    archive = _archive(args.out)
    bundle, _video = _resolve(archive, args.video)
    if Path(args.output).exists():  # refused before the repair below logs anything
        print(f"error: {args.output} already exists: choose another name or remove it first", file=sys.stderr)
        return 2
    with bundle_lock(archive, bundle.name):  # the bundle repaired and exported is the one verified, whole
        _repair_before_export(archive, bundle)
        if args.redact is not None:
            return _export_public(archive, bundle, args)
        print(export_bundle(archive, bundle, args.output, with_original=args.with_original, formats=args.formats))
        _log_export(archive, bundle, args)
    return 0


def _log_export(archive: Path, bundle: Path, args: argparse.Namespace) -> None:
    """Who took what out of the archive, in the access log: the OS user, the bundle, where it went and
    with what (the original, documents, a redacted public copy)."""
    detail = {"output": str(Path(args.output).resolve()), "with_original": args.with_original,
              "formats": args.formats, "redacted": args.redact is not None, "media": args.media}
    access.record(archive, access.local_user(), "export", bundle=bundle.name[:12], **detail)


def _repair_before_export(archive: Path, bundle: Path) -> None:
    """Work a crash left unlogged (a save killed before its custody line) is logged first, as `repair`
    would (each step in custody), so a complete bundle is not refused for it."""
    from pipeline.archive.repair import repair_video

    if sha256 := source_of(bundle).get("sha256"):
        for line in repair_video(archive, sha256):
            print(f"repaired: {line}", file=sys.stderr)


def _export_public(archive: Path, bundle: Path, args: argparse.Namespace) -> int:
    from pipeline.archive.public import export_public
    from pipeline.archive.redact import RedactList

    done = export_public(archive, bundle, args.output, RedactList.read(args.redact), media=args.media)
    _log_export(archive, bundle, args)
    print(done.folder)
    print(f"{len(done.changed)} segment(s) redacted, {len(done.muted)} span(s) muted; public id {done.public_id}",
          file=sys.stderr)
    return 0


@_guarded
def cmd_clean(args: argparse.Namespace) -> int:
    """One line per folder removed; the count on standard error."""
    from pipeline.run.cleanup import clean

    if args.older_than < 0:
        print("error: --older-than takes a number of days, 0 or more", file=sys.stderr)
        return 2
    archive = _archive(args.out)
    removed = clean(archive, args.older_than)
    for folder in removed:
        print(f"removed {folder}")
    print(f"{len(removed)} abandoned work folder(s) removed", file=sys.stderr)
    _clean_adapt_runs(archive, args)
    return 0


def _clean_adapt_runs(archive: Path, args: argparse.Namespace) -> None:
    """The checkpoints of adaptation runs: what each removal freed, and which resumable runs stay."""
    from pipeline.adapt.clean import clean_runs, kept

    removed = clean_runs(archive, unfinished=args.adapt_runs, older_than_days=args.older_than)
    for run in removed:
        what = f"finished: its model {run.model} is in .models/" if run.model else "unfinished, idle"
        print(f"removed {run.folder} (adapt run, {what}; {run.size / 2**20:.1f} MiB)")
    if removed:
        print(f"{len(removed)} adapt run(s) removed, {sum(r.size for r in removed) / 2**20:.1f} MiB freed",
              file=sys.stderr)
    for folder in kept(archive):
        print(f"kept {folder}: an unfinished adapt run (the same `testimony adapt` resumes it; "
              "`clean --adapt-runs` removes it once idle --older-than days)", file=sys.stderr)
