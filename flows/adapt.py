"""The `adapt` flow: `testimony adapt` started from the Prefect UI (a deployment `serve` applies).

One flow, one call: `pipeline.adapt.run.adapt` does the work and its progress lines go to the run's
log; the outcome (the model's name, its held-out figures, routed or not) is the run's result.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from pipeline import config


@flow(name="adapt", log_prints=True)
def adapt_language(language: str, out: str | None = None, from_model: str | None = None, epochs: int = 3,
                   seed: int = 0, held_out: float = 0.2, route: bool = False) -> str:
    """Fine-tune the language's Whisper model on the archive's checked segments; route it only if it wins
    on the held-out recordings (or if `route` is set: an admin's decision)."""
    from pipeline.adapt import enter
    from pipeline.adapt.run import adapt
    from pipeline.adapt.train import Progress, Settings
    from pipeline.asr.whisper_engine import default_device

    log = get_run_logger()
    settings = Settings(whisper_token="", epochs=epochs, seed=seed, held_out=held_out, device=default_device())
    outcome = adapt(config.archive_dir(out), language, model=from_model, settings=settings, force_route=route,
                    say=log.info, progress=Progress(0, write=log.info))
    line = f"{outcome.name}: {enter.summary(outcome.record)}"
    log.info(line)
    return line
