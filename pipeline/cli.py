"""`testimony` command line. Errors reach the user as one line naming the file and what to do."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from . import config


def _run_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="transcribe and translate videos into linked transcript bundles")
    run.add_argument("videos", nargs="+", type=Path, help="video or audio files")
    run.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")
    run.add_argument("--language", default="auto",
                     help="language code of the speech (kk, ug, en, ...) or auto (default)")
    run.add_argument("--asr-model", default="base",
                     help="official Whisper name (tiny, base, small, ...) or a checkpoint path (default: base)")
    run.add_argument("--whisper-token", help="Whisper language token a fine-tuned model decodes with "
                     "(e.g. uz for a Uyghur model trained over the Uzbek token)")
    run.add_argument("--audio-track", type=int, help="audio track to use, counted from 0 (default: "
                     "the stream marked default)")
    run.add_argument("--beam-size", type=int, help="beam search width (default: greedy)")
    run.add_argument("--no-vad", action="store_true", help="decode the whole audio, silence included")
    run.add_argument("--no-word-timestamps", action="store_true",
                     help="faster, but segment times rest on Whisper's coarser segment timestamps")
    run.add_argument("--no-fallback", action="store_true",
                     help="decode at temperature 0 only: fastest, no retry of repetitive or unsure windows")
    run.add_argument("--no-translate", action="store_true", help="skip the English translation")
    run.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when present")
    run.add_argument("--force", action="store_true", help="redo videos that already have a bundle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testimony", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    return parser


def _options(args: argparse.Namespace):
    from .asr import AsrOptions
    from .process import RunOptions

    asr = AsrOptions(model=args.asr_model, language=args.language, whisper_token=args.whisper_token,
                     beam_size=args.beam_size, vad=not args.no_vad,
                     word_timestamps=not args.no_word_timestamps,
                     temperatures=(0.0,) if args.no_fallback else AsrOptions.temperatures)
    return RunOptions(asr=asr, audio_track=args.audio_track, translate=not args.no_translate,
                      device=args.device)


def _stage_printer(video: Path):
    if not sys.stderr.isatty():
        return None
    return lambda stage: print(f"  {video.name}: {stage}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .errors import TestimonyError

    options = _options(args)
    archive = config.archive_dir(args.out)
    use_prefect = bool(os.environ.get("PREFECT_API_URL"))  # a configured server: runs show there
    failed = 0
    for video in args.videos:
        try:
            if use_prefect:
                from flows.process_video import process_video_flow

                result = process_video_flow(
                    str(video), str(archive), language=args.language, asr_model=args.asr_model,
                    whisper_token=args.whisper_token, audio_track=args.audio_track,
                    translate_to_english=not args.no_translate, beam_size=args.beam_size,
                    vad=not args.no_vad, word_timestamps=not args.no_word_timestamps,
                    temperature_fallback=not args.no_fallback,
                    device=args.device, force=args.force)
            else:
                from .process import process_video

                result = process_video(video, archive, options, force=args.force,
                                       progress=_stage_printer(video))
        except TestimonyError as exc:
            failed += 1
            print(f"FAILED {video}: {exc}", flush=True)
            continue
        except OSError as exc:  # disk full, unwritable archive: the input is untouched
            failed += 1
            print(f"FAILED {video}: could not write to {exc.filename or archive}: {exc.strerror or exc}. "
                  "Free space or fix permissions on the archive folder, then run again.", flush=True)
            continue
        print(f"{result.bundle}\t{result.status}", flush=True)
        for warning in result.warnings:
            print(f"  warning: {video}: {warning}", flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    config.apply_privacy_defaults()
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
