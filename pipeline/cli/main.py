"""`testimony` command line. Errors reach the user as one line naming the file and what to do."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from pipeline import config
from pipeline.archive import originals
from pipeline.cli import access_log as access_cli
from pipeline.cli import adapt as adapt_cli
from pipeline.cli import archive as archive_cli
from pipeline.cli import errors as cli_errors
from pipeline.cli import integrity as integrity_cli
from pipeline.cli import models as models_cli
from pipeline.cli import review as review_cli
from pipeline.cli import sample as sample_cli
from pipeline.cli import users as users_cli
from pipeline.cli import workflow as workflow_cli
from pipeline.run import options as options_table


def _run_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="transcribe and translate videos into linked transcript bundles")
    run.add_argument("videos", nargs="+", type=Path, help="video or audio files")
    run.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")
    options_table.add_arguments(run, "run")
    run.add_argument("--force", action="store_true", help="redo videos that already have a bundle")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the service: local Prefect server and UI, deployments, watch folder")
    serve.add_argument("--inbox", type=Path, default=Path("inbox"), help="watch folder (default: inbox/)")
    serve.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")
    serve.add_argument("--port", type=int, default=4200, help="Prefect server port on 127.0.0.1 (default: 4200)")
    review_cli.add_exposure(serve, "the review workspace (Prefect stays on 127.0.0.1)")
    serve.add_argument("--settle", type=float, default=2.0,
                       help="seconds a dropped file's size must hold still before it is read (default: 2)")
    serve.add_argument("--review-port", type=int, default=4300,
                       help="review workspace port on 127.0.0.1 (default: 4300; 0: no workspace)")


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve
    from pipeline.errors import TestimonyError
    from pipeline.run.options import RunOptions
    from pipeline.run.preflight import check_before_work

    try:
        check_before_work(RunOptions.from_flat(), "auto")  # what `run` refuses, refused before a video is taken
        return serve(args.inbox, config.archive_dir(args.out), exposure=review_cli.exposure_of(args), port=args.port,
                     settle_seconds=args.settle, review_port=args.review_port)
    except TestimonyError as exc:  # refused before anything listens (an open address without TLS)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the server would not start: say where its log is
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _deploy_parser(sub: argparse._SubParsersAction) -> None:
    deploy = sub.add_parser("deploy", help="scale out: a process work pool, GPU limits and our deployments "
                            "on the Prefect server at $PREFECT_API_URL, for workers on several machines")
    deploy.add_argument("--pool", required=True, help="work pool name (created, type process, when missing)")
    deploy.add_argument("--out", help="archive root on the shared storage, same path on every machine "
                        "(default: $TESTIMONY_OUT, else transcripts/)")
    deploy.add_argument("--models", type=Path, help="model store on the shared storage (default: "
                        "$TESTIMONY_MODELS, else models/ here)")
    deploy.add_argument("--gpu-limit", type=int, default=0, metavar="N", help="create N global concurrency "
                        "limits testimony-gpu-0 ... testimony-gpu-<N-1>, one slot each: one per GPU the "
                        "workers use, so each GPU runs one transcription at a time (default: 0, none)")


def cmd_deploy(args: argparse.Namespace) -> int:
    from flows.scale_out import main as deploy_main

    return deploy_main(args.pool, config.archive_dir(args.out), models=args.models, gpus=args.gpu_limit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testimony", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _eval_parser(sub)
    models_cli.add_parser(sub)
    _serve_parser(sub)
    _deploy_parser(sub)
    archive_cli.add_parsers(sub)
    integrity_cli.add_parsers(sub)
    review_cli.add_parsers(sub)
    users_cli.add_parser(sub)
    access_cli.add_parser(sub)
    workflow_cli.add_parser(sub)
    sample_cli.add_parser(sub)
    adapt_cli.add_parser(sub)
    return parser


def _settings(args: argparse.Namespace) -> dict:
    """The run's settings in the flat form both `RunOptions.from_flat` and the Prefect flow take."""
    return options_table.settings(args, "run")


def _shown(path: Path) -> str:
    """A path on one line, whatever bytes or newlines its name holds."""
    from pipeline.names import display_path, one_line

    return one_line(display_path(path))


def _stage_printer(video: Path):
    if not sys.stderr.isatty():
        return None
    return lambda stage: print(f"  {_shown(video)}: {stage}", file=sys.stderr, flush=True)


def _failure(exc: BaseException, archive: Path) -> str:
    """One line a user can act on: what went wrong and what to do."""
    from pipeline.errors import BadInputError, TestimonyError

    if isinstance(exc, BadInputError):
        return f"{exc.problem}. {exc.hint}"
    if isinstance(exc, TestimonyError):
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename or archive
        return (f"{exc.strerror or exc} ({_shown(Path(str(where)))}). Check free space and permissions "
                "on the archive folder and the video, then run again; the video was not changed.")
    return (f"unexpected error ({type(exc).__name__}: {exc}). The video was not changed; please report "
            "this with the file's details.")


def _results(args: argparse.Namespace, settings: dict, options, archive: Path):
    """(video, RunResult or the exception that stopped it) in input order.

    Without Prefect, the next video's audio is extracted while the current one is transcribed.
    """
    from pipeline.run.batch import run_many

    if not os.environ.get("PREFECT_API_URL"):
        yield from run_many(args.videos, archive, options, force=args.force, progress_for=_stage_printer)
        return
    from flows.process_video import process_video_flow  # a configured server: runs show there

    for video in args.videos:
        try:
            yield video, process_video_flow(str(video), str(archive), **settings, force=args.force)
        except Exception as exc:
            yield video, exc


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.errors import TestimonyError
    from pipeline.run.preflight import check_before_work
    from pipeline.run.process import RunOptions

    settings = _settings(args)
    archive = config.archive_dir(args.out)
    try:  # a language with no model or no token fails now, not after hashing and extracting
        config.file_mode()  # as does a bad TESTIMONY_FILE_MODE
        originals.mode()  # or TESTIMONY_ORIGINALS
        options = RunOptions.from_flat(**settings, archive=archive)  # its own adapted models' routes too
        check_before_work(options, args.language)  # glossary, speaker encoder, token, ASR model installed
    except TestimonyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for video, result in _results(args, settings, options, archive):
        if isinstance(result, Exception):  # one bad file never stops the batch, and never a stack trace
            failed += 1
            print(f"FAILED {_shown(video)}: {_failure(result, archive)}", flush=True)
            continue
        print(f"{_shown(result.bundle)}\t{result.status}", flush=True)
        for warning in result.warnings:
            print(f"warning: {_shown(video)}: {warning}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="score transcription (WER/CER), translation (chrF/BLEU), language ID "
                        "and speed on clips with reference texts")
    ev.add_argument("manifest", type=Path, help="JSON Lines: one clip per line with audio, language, "
                    "reference and optional reference_en, id, whisper_token (see pipeline/evaluation/evaluate.py)")
    ev.add_argument("--out", help="report folder for report.md, report.json and the bundles "
                    "(default: report/ beside the manifest)")
    ev.add_argument("--archive", help="follow this archive's own routes too (the models adapted on its "
                    "witnesses, `testimony adapt`); without it, only the model store's")
    ev.add_argument("--language", choices=["clip", "auto"], default="clip", help="clip: force each clip's "
                    "language and detect in a separate pass (default); auto: the pipeline detects, as run does")
    options_table.add_arguments(ev, "eval")


def cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.evaluation.evaluate import run_eval

    if cli_errors.missing_eval_extra("eval"):  # before any clip is transcribed
        return cli_errors.REFUSED
    return run_eval(args)


def main(argv: Sequence[str] | None = None) -> int:
    config.apply_privacy_defaults()
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "models": models_cli.run, "eval": cmd_eval, "serve": cmd_serve,
                "list": archive_cli.cmd_list, "get": archive_cli.cmd_get, "search": archive_cli.cmd_search,
                "deploy": cmd_deploy, "verify": integrity_cli.cmd_verify, "export": integrity_cli.cmd_export,
                "history": review_cli.cmd_history, "review": review_cli.cmd_review, "clean": integrity_cli.cmd_clean,
                "users": users_cli.run, "quality": review_cli.cmd_quality,
                "repair": integrity_cli.cmd_repair,
                "access-log": access_cli.cmd_access_log,
                "sample": sample_cli.cmd_sample, "progress": workflow_cli.cmd_progress,
                "adapt": adapt_cli.cmd_adapt}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return cli_errors.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
