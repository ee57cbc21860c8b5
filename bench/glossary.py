"""What the glossary prompt does to names: the share spelled exactly as the team spells them, without
and with the glossary, and the word error rate on every other word, which must not get worse.

English speech from espeak-ng that says Kazakh and Uyghur names of people and places (as an
interviewer reads them out), transcribed by the real pipeline (`process_video`, Whisper base) once
with no glossary and once with the names in `--glossary`, on each engine. A name counts as spelled
right when the transcript has it as a word, exactly (case aside). The rest: WER (jiwer) between the
reference without its names and the transcript without the words that try to spell a name (within
three edits of one), so a misspelt name is not counted twice.

    .venv/bin/python bench/glossary.py [--engine whisper|faster-whisper|both]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stage_times import machine_info  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results-glossary.md"
NAMES = ["Nurlan", "Tursunbek", "Ghulja", "Sayragul", "Sauytbay", "Zhanibek", "Qaraghandy", "Gulbahar",
         "Urumqi", "Kuytun", "Erkin", "Tursun", "Aqtoghay", "Dilnur", "Kashgar", "Yerlan", "Qabanbay", "Shawket"]
SENTENCES = [
    "My brother Nurlan Tursunbek was taken from our house in Ghulja in the spring.",
    "Sayragul Sauytbay told us that the camp near Aqtoghay was full.",
    "Zhanibek worked in Qaraghandy before he went back to see his mother.",
    "My aunt Gulbahar was held in Urumqi for eleven months.",
    "We last heard from Erkin Tursun when he was in Kuytun.",
    "Dilnur wrote to us from Kashgar, and then the letters stopped.",
    "Yerlan and his father Qabanbay crossed the border at night.",
    "The officer called Shawket took our passports away.",
]


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _name_like(word: str) -> bool:
    from pipeline.stages.glossary import distance

    return any(distance(word, name.lower(), 3) <= 3 for name in NAMES)


def score(reference: str, heard: str) -> tuple[int, int, float]:
    """(names in the reference, of those spelled exactly, WER on the other words)."""
    import jiwer

    said = [w for w in _words(reference) if w.capitalize() in NAMES]
    words = set(_words(heard))
    exact = sum(name in words for name in said)
    rest_ref = " ".join(w for w in _words(reference) if w.capitalize() not in NAMES)
    rest_heard = " ".join(w for w in _words(heard) if not _name_like(w))
    return len(said), exact, jiwer.wer(rest_ref, rest_heard)


def transcribe(videos: list[Path], archive: Path, engine: str, glossary: Path | None) -> list[str]:
    from pipeline.run.process import RunOptions, process_video
    from pipeline.transcript import Transcript

    options = RunOptions.from_flat(language="en", translate_to_english=False, engine=engine,
                                   glossary=str(glossary) if glossary else None)
    texts = []
    for video in videos:
        bundle = process_video(video, archive, options).bundle
        texts.append(" ".join(s.text for s in Transcript.load(bundle / "transcript.json").segments))
    return texts


def make_videos(root: Path) -> list[Path]:
    from tests import media_factory as mf

    return [mf.video_from_audio(mf.speak(text, "en", root / f"s{n}.wav"), root / f"s{n}.mp4", lead_silence=0.5)
            for n, text in enumerate(SENTENCES)]


def measure(engine: str, root: Path, videos: list[Path]) -> list[str]:
    glossary = root / "names.txt"
    glossary.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    rows = []
    for label, names in (("without", None), ("with", glossary)):
        heard = transcribe(videos, root / f"archive-{engine}-{label}", engine, names)
        scores = [score(ref, text) for ref, text in zip(SENTENCES, heard)]
        said, exact = sum(s[0] for s in scores), sum(s[1] for s in scores)
        wer = sum(s[2] for s in scores) / len(scores)
        rows.append(f"| {engine} | {label} | {exact}/{said} ({exact / said:.0%}) | {wer:.1%} |")
        for ref, text in zip(SENTENCES, heard):
            print(f"[{engine} {label}] {text}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("whisper", "faster-whisper", "both"), default="both")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    engines = ("whisper", "faster-whisper") if args.engine == "both" else (args.engine,)
    with tempfile.TemporaryDirectory(prefix="glossary-bench-") as tmp:
        root = Path(tmp)
        videos = make_videos(root)
        rows = [row for engine in engines for row in measure(engine, root, videos)]
    table = ["| engine | glossary | names spelled exactly | WER, other words |", "|---|---|---|---|", *rows]
    machine = machine_info("cpu")
    text = "\n".join(["# Glossary prompt: names spelled right", "",
                      *(f"- {key}: {value}" for key, value in machine.items()), "",
                      f"{len(SENTENCES)} espeak-ng English sentences saying {len(NAMES)} Kazakh and Uyghur names; "
                      "Whisper base; `bench/glossary.py`.", "", *table, ""])
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
