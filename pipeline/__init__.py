"""testimony: offline video -> linked bilingual transcript pipeline (no Prefect import here).

The public surface is below; each name is imported on first use, so `import pipeline` stays cheap
and a faster-whisper run never loads torch.

    from pipeline import RunOptions, process_video
    result = process_video("interview.mp4", "transcripts", RunOptions.from_flat(language="kk"))
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    # one video's run
    "RunOptions": "pipeline.run.process", "RunResult": "pipeline.run.process", "Stages": "pipeline.run.process",
    "process_video": "pipeline.run.process", "prepare_video": "pipeline.run.process",
    "finish_video": "pipeline.run.process", "retranslate": "pipeline.run.process",
    "run_many": "pipeline.run.batch", "OPTIONS": "pipeline.run.options",
    # what a run makes
    "AsrOptions": "pipeline.asr.core", "Transcript": "pipeline.transcript", "Segment": "pipeline.transcript",
    "Word": "pipeline.transcript", "Source": "pipeline.transcript",
    # the archive
    "verify_bundle": "pipeline.archive.integrity", "reproduce": "pipeline.run.reproduce",
    # errors a caller can act on
    "TestimonyError": "pipeline.errors", "BadInputError": "pipeline.errors",
    "ModelMissingError": "pipeline.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
