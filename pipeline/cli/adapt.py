"""`testimony adapt`: fine-tune a language's Whisper model on the segments reviewers checked."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.errors import REFUSED, guarded
from pipeline.cli.integrity import OUT_HELP, _archive


def add_parser(sub: argparse._SubParsersAction) -> None:
    adapt = sub.add_parser("adapt", help="fine-tune the language's Whisper model on checked segments (audio from "
                           "the kept originals, text from the newest revision); route it only if it wins")
    adapt.add_argument("--language", required=True, help="the language code whose checked segments teach it")
    adapt.add_argument("--from", dest="model", help="the model to start from (default: the language's route)")
    adapt.add_argument("--epochs", type=int, default=3, help="passes over the training segments (default: 3)")
    adapt.add_argument("--seed", type=int, default=0, help="seed of the split and the order (default: 0)")
    adapt.add_argument("--held-out", type=float, default=0.2, help="fraction of recordings scored, never "
                       "learned from (default: 0.2; at least one recording)")
    adapt.add_argument("--learning-rate", type=float, default=1e-5, help="AdamW learning rate (default: 1e-5)")
    adapt.add_argument("--batch-size", type=int, default=4, help="segments per step (default: 4)")
    adapt.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when present, else cpu")
    adapt.add_argument("--route", action="store_true", help="make it the language's route for this archive even if it "
                       "does not beat the current model on the held-out recordings (an admin's decision)")
    adapt.add_argument("--out", help=OUT_HELP)


@guarded
def cmd_adapt(args: argparse.Namespace) -> int:
    from pipeline.adapt import enter
    from pipeline.adapt.run import adapt
    from pipeline.adapt.train import Settings
    from pipeline.asr.whisper_engine import default_device
    from pipeline.cli.errors import missing_eval_extra

    if missing_eval_extra("adapt"):  # jiwer scores the held-out recordings
        return REFUSED
    settings = Settings(whisper_token="", epochs=args.epochs, seed=args.seed, learning_rate=args.learning_rate,
                        batch_size=args.batch_size, held_out=args.held_out, device=args.device or default_device())
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    outcome = adapt(_archive(args.out), args.language.strip().lower(), model=args.model, settings=settings,
                    force_route=args.route, say=say)
    print(f"{outcome.name}\t{enter.summary(outcome.record)}")
    print(f"record: {outcome.path}.json")
    return 0
