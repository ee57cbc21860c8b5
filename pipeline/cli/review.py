"""`testimony history` (who changed what, revision by revision) and `testimony review` (the workspace)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import workflow as workflow_cli
from pipeline.cli.errors import REFUSED, error, guarded
from pipeline.cli.integrity import OUT_HELP, _archive, _resolve
from pipeline.errors import TestimonyError
from pipeline.names import display_name


def add_parsers(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser("history", help="the revisions of a transcript: who saved each, when, and how many "
                             "segments changed; --revision N prints one's changes before and after")
    history.add_argument("video", help="id, SHA-256, file name or the video file itself")
    history.add_argument("--revision", type=int, help="print this revision's changes, segment by segment")
    history.add_argument("--out", help=OUT_HELP)

    review = sub.add_parser("review", help="serve the review workspace on 127.0.0.1 (the editor and its API); "
                            "`review import ID FILE --as NAME` brings back corrections made in another program")
    review.add_argument("action", nargs="?", choices=["import", *workflow_cli.ACTIONS], help="import: save a "
                        "returned SRT, VTT or DOCX as one revision by an account (its segments checked); claim, "
                        "release, check, approve, assign: move the bundle through the review workflow as --as NAME")
    review.add_argument("video", nargs="?", help="with an action: id, SHA-256, file name or the video file")
    review.add_argument("file", nargs="?", type=Path, help="with import: the returned SRT, VTT or DOCX")
    review.add_argument("--as", dest="as_name", metavar="NAME", help="with import: the account the revision "
                        "is saved as; with an action: the account that acts (it must exist: testimony users add)")
    workflow_cli.add_review_arguments(review)
    review.add_argument("--content", choices=["original", "english", "bilingual"], help="with import: what "
                        "the file's lines hold (default: from its name, kk.srt original, en.srt English, "
                        "kk-en.srt both; a DOCX both)")
    review.add_argument("--out", help=OUT_HELP)
    add_exposure(review, "the workspace")
    review.add_argument("--port", type=int, default=4300, help="port (default: 4300)")

    quality = sub.add_parser("quality", help="the machine's drafts scored against what reviewers checked: WER "
                             "and CER per language, model, recording, speaker and month; English chrF/BLEU; "
                             "frequent corrections; names to add to the glossary")
    quality.add_argument("--language", help="only this language's bundles")
    quality.add_argument("--since", help="only checks saved on or after this date (YYYY-MM-DD)")
    quality.add_argument("--glossary", help="the team's glossary file: its names are not offered again")
    quality.add_argument("--json", action="store_true", help="print the figures as JSON")
    quality.add_argument("--out", help=OUT_HELP)


def add_exposure(parser: argparse.ArgumentParser, what: str) -> None:
    """--host and what another address than this machine's own needs: TLS, or saying no on purpose."""
    parser.add_argument("--host", default="127.0.0.1", help=f"address {what} binds (default: 127.0.0.1, this "
                        "machine only; another address needs --tls-cert and --tls-key, or --insecure-http)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate: serve HTTPS (cookies then go Secure)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument("--insecure-http", action="store_true", help="serve another address over plain HTTP "
                        "anyway (passwords and testimony cross the network in clear)")
    parser.add_argument("--public-url", action="append", default=[], metavar="URL", help="an address people "
                        "open the workspace by, where that is not --host (a host name, a TLS proxy in front); "
                        "its pages may send changes (repeatable)")


def exposure_of(args: argparse.Namespace):
    from pipeline.review.auth import Exposure

    return Exposure(args.host, args.tls_cert, args.tls_key, args.insecure_http, tuple(args.public_url))


@guarded
def cmd_history(args: argparse.Namespace) -> int:
    from pipeline.review import revisions

    archive = _archive(args.out)
    bundle, _video = _resolve(archive, args.video)
    chain = revisions.chain(bundle)
    if args.revision is None:
        for r in chain:
            note = "" if r.stored else " (implied by transcript.json: nobody has saved a revision yet)"
            merged = f", merged with revision {r.number - 1}" if r.base is not None and r.base != r.number - 1 else ""
            print(f"{r.number:>4}  {r.sha256[:12]}  {r.time or '-':<25}  {display_name(r.author):<20}  "
                  f"{len(r.changes)} segment(s) changed{merged}{note}")
        return 0
    found = [r for r in chain if r.number == args.revision]
    if not found:  # a request that cannot be met, like an unknown id: 2 (README, "Exit status")
        error(f"{bundle.name} has revisions 0 to {chain[-1].number}, not {args.revision}")
        return REFUSED
    revision = found[0]
    print(f"revision {revision.number} of {bundle.name} by {revision.author} at {revision.time} "
          f"(sha256 {revision.sha256}, parent {revision.parent})")
    for change in revision.changes:
        print(_change_text(change))
    return 0


def _change_text(change: dict) -> str:
    seg = change["segment"]
    if change["change"] == "added":
        after = change["after"]
        return f"segment {seg}: added  [{after['start']}-{after['end']}]  {after['text']!r}"
    if change["change"] == "removed":
        return f"segment {seg}: removed  (was {change['before']['text']!r})"
    lines = [f"segment {seg}:"]
    for name, (before, after) in change["fields"].items():
        lines.append(f"  {name}: {before!r} -> {after!r}")
    return "\n".join(lines)


@guarded
def cmd_review(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args)
    if args.action in workflow_cli.ACTIONS:
        return workflow_cli.cmd_transition(args)
    from pipeline.archive.viewer import use_review_port
    from pipeline.review.server import serve_workspace

    use_review_port(args.port)  # a viewer a save re-makes links to this workspace
    try:
        return serve_workspace(_archive(args.out), exposure=exposure_of(args), port=args.port)
    except TestimonyError as exc:  # refused before anything listens: an open address without TLS
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    """One revision from a returned file; its number and what it changed on standard output."""
    from pipeline.archive.bundle import TRANSCRIPT
    from pipeline.review.imports import import_file
    from pipeline.transcript import read_json

    if not (args.video and args.file and args.as_name):
        print("error: review import needs the video, the file and --as NAME: testimony review import ID FILE "
              "--as NAME", file=sys.stderr)
        return 2
    archive = _archive(args.out)
    bundle, _video = _resolve(archive, args.video)
    sha256 = read_json(bundle / TRANSCRIPT)["source"]["sha256"]
    saved = import_file(archive, sha256, args.file, args.as_name, args.content)
    if saved.unchanged:
        print(f"{bundle.name}: the file changes nothing (revision {saved.revision.number} stands)")
    else:
        print(f"{saved.bundle.name}: revision {saved.revision.number} by {saved.revision.author} from "
              f"{args.file.name}, {len(saved.revision.changes)} segment(s) changed")
    return 0


@guarded
def cmd_quality(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from pipeline.cli.errors import REFUSED, missing_eval_extra
    from pipeline.evaluation import quality

    if missing_eval_extra("quality"):
        return REFUSED
    archive = _archive(args.out)
    glossary = []
    if args.glossary:
        from pipeline.stages.glossary import read_entries, split_spelling

        glossary = [split_spelling(line)[0] for line in read_entries(Path(args.glossary))]
    data = quality.summary(quality.collect(archive, language=args.language, since=args.since, glossary=glossary))
    print(json.dumps(data, ensure_ascii=False, indent=1) if args.json else quality.text_view(data))
    return 0 if data["checked_segments"] else 1
