"""Diarization error rate and added real-time factor of `pipeline.speakers` (a benchmark, not a test).

Interviews are built at run time from voices taking turns: two espeak-ng variants far apart (a low
male, a high female) and the real LibriVox reader of Debian's pocketsphinx-testdata, with pauses, and
in the overlap cases each change of speaker starting before the last one has finished. The reference
turns are each clip's voiced span (Silero VAD on the clip alone). The error rate is pyannote.metrics'
`DiarizationErrorRate`, with a 0.25 s forgiveness collar around reference boundaries and without one;
overlapped speech is scored (our labels give one speaker at a time, so overlap counts as missed).
The speaker count is found automatically, as a run does by default.

    .venv/bin/python bench/diarization.py

The real-time factor is diarization seconds (VAD, embedding, clustering) over audio seconds, with the
encoder already loaded; its load is reported apart. Results go to stdout and bench/results-diarization.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.media_factory when run as `python bench/diarization.py`

DEFAULT_OUT = REPO / "bench" / "results-diarization.md"
LOAD_AT_START = os.getloadavg()[0]
COLLAR = 0.25
OVERLAP = 0.5  # seconds both speak at each change of speaker, in the overlap cases
PAUSE = 0.8
LINES = (3, 5, 6, 9, 14, 15, 16, 18, 19)  # the UDHR articles short enough for an answer or a question
CASES = {  # name -> (voices in speaking order, overlap)
    "2 voices, pauses": (("low", "high"), 0.0),
    "3 voices, pauses": (("low", "high", "librivox"), 0.0),
    "2 voices, overlaps": (("low", "high"), OVERLAP),
    "3 voices, overlaps": (("low", "high", "librivox"), OVERLAP),
}


def clips(voices: tuple[str, ...], folder: Path) -> list[tuple[str, Path]]:
    """Each voice's lines, interleaved into turns: A B (C) A B (C) …"""
    from tests import media_factory as mf

    texts = [mf.udhr("en")[n] for n in LINES]
    spoken = {v: mf.voice_lines(v, texts, folder) for v in voices}
    rounds = min(len(spoken[v]) for v in voices)
    return [(v, spoken[v][n]) for n in range(rounds) for v in voices]


def annotation(turns: list[tuple[float, float, str]]):
    from pyannote.core import Annotation, Segment

    result = Annotation()
    for start, end, speaker in turns:
        result[Segment(start, end)] = speaker
    return result


def measure(name: str, voices: tuple[str, ...], overlap: float, folder: Path, encoder) -> dict:
    """One case: build it, diarize it (timed), score it."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    from pipeline.speakers.diarize import diarize
    from pipeline.stages.audio_source import WavAudio, duration
    from tests import media_factory as mf

    wav, truth = mf.conversation(clips(voices, folder), folder / "interview.wav", pause=PAUSE, overlap=overlap)
    audio = WavAudio(wav)
    began, cpu = time.perf_counter(), time.process_time()
    found = diarize(audio, encoder)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    reference = annotation(truth)
    hypothesis = annotation([(t.start, t.end, t.speaker) for t in found.turns])
    uem = reference.get_timeline().union(hypothesis.get_timeline()).extent()
    scored = DiarizationErrorRate(collar=COLLAR)(reference, hypothesis, uem=uem, detailed=True)
    strict = DiarizationErrorRate()(reference, hypothesis, uem=uem)
    return {"case": name, "audio": duration(audio), "speakers": len(voices), "found": found.record["found"],
            "turns": len(truth), "der": scored["diarization error rate"], "der0": strict,
            "missed": scored["missed detection"] / scored["total"], "false": scored["false alarm"] / scored["total"],
            "confusion": scored["confusion"] / scored["total"], "seconds": seconds, "cpu": cpu}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def report(rows: list[dict], load_s: float, command: str) -> str:
    from importlib.metadata import version

    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = ["# Diarization", "",
             f"Speaker diarization (`pipeline.speakers`, Resemblyzer encoder, automatic speaker count) measured by "
             f"`bench/diarization.py` on {when}. Re-run with:", "", "```", command, "```", "",
             f"| case | audio s | turns | speakers | found | DER (collar {COLLAR} s) | missed | false alarm | "
             "confusion | DER (no collar) | diarization s | CPU s | added RTF |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['audio']:.1f} | {r['turns']} | {r['speakers']} | {r['found']} | "
                     f"{r['der']:.1%} | {r['missed']:.1%} | {r['false']:.1%} | {r['confusion']:.1%} | "
                     f"{r['der0']:.1%} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['seconds'] / r['audio']:.4f} |")
    total_s, total_audio = sum(r["seconds"] for r in rows), sum(r["audio"] for r in rows)
    lines += ["", f"- **added RTF, all cases**: {total_s / total_audio:.4f} ({total_s:.2f} s for {total_audio:.1f} s "
              "of audio; the encoder already loaded)",
              f"- **encoder load** (first use in a process, librosa's first mel included): {load_s:.2f} s",
              f"- **metric**: pyannote.metrics {version('pyannote.metrics')} DiarizationErrorRate over the union of "
              "reference and hypothesis; overlapped speech scored (one label at a time: overlap counts as missed)",
              "- **voices**: espeak-ng en+m3 -p 30 (low), en+f4 -p 80 (high), the LibriVox reader of "
              f"pocketsphinx-testdata (real); UDHR lines, {PAUSE} s pauses, {OVERLAP} s overlaps at each change "
              "in the overlap cases",
              f"- **machine**: {platform.machine()}, os.cpu_count()={os.cpu_count()}, torch threads "
              f"{torch_threads()}, load average {LOAD_AT_START:.2f} at the start and {os.getloadavg()[0]:.2f} at "
              "the end (above the core count, other work shared the CPUs: the seconds are upper bounds)",
              f"- **python**: {platform.python_version()}, torch {version('torch')}, resemblyzer "
              f"{version('resemblyzer')}, scipy {version('scipy')}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown results file")
    args = parser.parse_args()
    import numpy as np

    from pipeline.speakers.choice import encoder_for

    began = time.perf_counter()
    encoder = encoder_for("resemblyzer")
    encoder.embed_batch(np.zeros((1, 25600), np.float32))  # librosa's first mel spectrogram compiles
    load_s = time.perf_counter() - began
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, (voices, overlap)) in enumerate(CASES.items()):
            folder = Path(tmp) / f"case{n}"
            folder.mkdir()
            rows.append(measure(name, voices, overlap, folder, encoder))
            print(rows[-1], flush=True)
    text = report(rows, load_s, ".venv/bin/python bench/diarization.py")
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
