"""`testimony adapt`: collect, split, score the current model, fine-tune, score again, enter the store.

The run id is a hash of everything that shapes the weights (the base model's SHA-256, every setting,
the revisions learned from), so running the same command again after a kill finds the run's folder
(`<archive>/.adapt/<run-id>/`) and takes it up from its last checkpoint; a changed setting or a new
checked segment is a new run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import atomic, config
from pipeline.adapt import enter, pairs, score
from pipeline.adapt.clean import RUNS
from pipeline.adapt.train import Progress, Settings, train
from pipeline.store.record import ModelRecord


@dataclass
class Outcome:
    name: str
    path: Path
    record: dict[str, Any]
    routed: bool


def base_model(language: str, model: str | None, archive: Path) -> tuple[ModelRecord, str]:
    """(the checkpoint to start from, the Whisper token it decodes the language with): --from, else the
    archive's route (its own adapted model, when it has one), else the store's."""
    from pipeline.store.routes import resolve_asr
    from pipeline.store.whisper_store import resolve_whisper

    name, token = resolve_asr(language, model, None, archive)
    return resolve_whisper(name), token or language


def run_id(base: ModelRecord, settings: Settings, train_set: list[pairs.Recording]) -> str:
    identity = {"base": base.sha256, "settings": asdict(settings),
                "revisions": [(r.sha256, r.revision_sha256) for r in train_set]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _scored(run_dir: Path, key: str, compute) -> dict[str, Any]:
    """A score kept in the run's folder, so a resumed run does not transcribe the held-out set twice."""
    path = run_dir / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    figures = compute()
    atomic.write_text(path, json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    return figures


def adapt(archive: str | Path, language: str, *, model: str | None = None, settings: Settings | None = None,
          force_route: bool = False, progress: Progress | None = None, say=print) -> Outcome:
    """Fine-tune the language's model on the archive's checked speech; route it only if it wins (or if told)."""
    archive = Path(archive).resolve()
    base, token = base_model(language, model, archive)
    settings = replace(settings or Settings(whisper_token=token), whisper_token=token)
    train_set, held = pairs.split(pairs.collect(archive, language), settings.held_out, settings.seed)
    ident = run_id(base, settings, train_set)
    run_dir = config.private_dirs(archive / RUNS / ident)
    say(f"run {ident}: learning from {sum(len(r.pairs) for r in train_set)} segment(s) in {len(train_set)} "
        f"recording(s), scoring on {sum(len(r.pairs) for r in held)} in {len(held)} held out")
    before = _scored(run_dir, "before", lambda: score.score(str(base.path), language, token, held,
                                                            device=settings.device))
    weights, losses = train(base.path, [p for r in train_set for p in r.pairs], settings, run_dir, progress)
    name = f"{language}-adapted-{ident[:10]}"
    path = enter.place(archive, name, weights)
    after = _scored(run_dir, "after", lambda: score.score(str(path), language, token, held, device=settings.device))
    routed = force_route or score.beats(after, before)
    facts = {"language": language, "whisper_token": token, "run_id": ident, "settings": asdict(settings),
             "base": {"name": base.name, "sha256": base.sha256, "licence": base.licence, "origin": base.origin},
             "learned_from": [r.cite() for r in train_set], "held_out": [r.cite() for r in held],
             "losses": [round(v, 6) for v in losses], "before": before, "after": after, "routed": routed,
             "route_reason": ("beats the current model on the held-out recordings" if score.beats(after, before)
                              else "an admin said so (--route)" if force_route else
                              "does not beat the current model on the held-out recordings")}
    record = enter.record(archive, name, path, facts)
    if routed:
        enter.route(archive, language, name, token)
    return Outcome(name, path, record, routed)
