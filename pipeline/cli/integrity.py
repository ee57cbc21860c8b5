"""`testimony verify` and `testimony export`: check bundles against their hashes, pack one for others."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config
from pipeline.archive import catalog
from pipeline.archive.bundle import find_bundle, tidy_after_kill
from pipeline.archive.integrity import bundles_in, export_bundle, verify_bundle
from pipeline.archive.locks import bundle_lock
from pipeline.cli.errors import guarded
from pipeline.hashing import file_sha256

OUT_HELP = "archive root (default: $TESTIMONY_OUT, else transcripts/)"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register verify and export on the `testimony` parser."""
    verify = sub.add_parser("verify", help="re-hash bundles against their manifests, check the custody log "
                            "and the original video; exit 1 on any problem")
    verify.add_argument("video", nargs="?", help="id, SHA-256, file name or the video file itself "
                        "(default: every bundle in the archive)")
    verify.add_argument("--out", help=OUT_HELP)
    verify.add_argument("--reproduce", action="store_true",
                        help="also re-derive the transcript from the kept original with the recorded models "
                             "and options, and compare it segment by segment (takes as long as the run)")
    verify.add_argument("--original", type=Path, help="the original video to re-hash (default: its arrival "
                        "path in the custody log, when it is still there)")
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

    clean = sub.add_parser("clean", help="remove work folders (extracted audio, checkpoints) that failed runs "
                           "left and nobody came back to; each removal is logged in custody")
    clean.add_argument("--out", help=OUT_HELP)
    clean.add_argument("--older-than", type=float, default=7.0, metavar="DAYS",
                       help="untouched for this many days (default: 7; a run in progress touches its folder "
                            "every chunk)")


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
        sha256 = file_sha256(given)
        bundle = find_bundle(archive, sha256)
        if bundle is None:
            raise catalog.CatalogError(f"{key} (sha256 {sha256}) has no bundle in {archive}")
        return bundle, given
    if (archive / key).is_dir() and not key.startswith("."):
        return archive / key, None
    catalog.sync(archive)
    video = catalog.resolve(archive, key)
    if video.bundle is None:
        raise catalog.CatalogError(f"{video.id} has no bundle: its processing {video.status}")
    return archive / video.bundle, None


_guarded = guarded


@_guarded
def cmd_verify(args: argparse.Namespace) -> int:
    """One line per problem on standard output, `<bundle>: ok` per clean bundle; exit 1 on any problem."""
    archive = _archive(args.out)
    tidy_after_kill(archive)  # a publish killed half way: its one whole bundle is put back first
    if args.video:
        bundle, video_file = _resolve(archive, args.video)
        targets = [(bundle, args.original or video_file)]
    elif args.original:
        print("error: --original needs the video it belongs to: testimony verify ID --original PATH",
              file=sys.stderr)
        return 2
    else:
        targets = [(bundle, None) for bundle in bundles_in(archive)]
        if not targets:
            print(f"no bundles in {archive}", file=sys.stderr)
            return 0
    if args.public and not args.video:
        print("error: --public needs the video it was made from: testimony verify ID --public FOLDER",
              file=sys.stderr)
        return 2
    failed = 0
    for bundle, original in targets:
        with bundle_lock(archive, bundle.name, shared=True):  # no save or publish half way through
            report = verify_bundle(archive, bundle, original)
        problems = list(report.problems)
        if args.public and report.sha256:
            from pipeline.archive.public import verify_public

            problems += verify_public(archive, report.sha256, args.public)
        if args.reproduce:
            from pipeline.archive.reproduce import reproduce

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
    return 1 if failed else 0


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
    with bundle_lock(archive, bundle.name):  # the bundle exported is the one verified, whole
        if args.redact is not None:
            return _export_public(archive, bundle, args)
        print(export_bundle(archive, bundle, args.output, with_original=args.with_original, formats=args.formats))
    return 0


def _export_public(archive: Path, bundle: Path, args: argparse.Namespace) -> int:
    from pipeline.archive.public import export_public
    from pipeline.archive.redact import RedactList

    done = export_public(archive, bundle, args.output, RedactList.read(args.redact), media=args.media)
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
    removed = clean(_archive(args.out), args.older_than)
    for folder in removed:
        print(f"removed {folder}")
    print(f"{len(removed)} abandoned work folder(s) removed", file=sys.stderr)
    return 0
