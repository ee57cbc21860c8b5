"""What cutting loops does to the word error rate: an eval's transcripts scored three ways.

Reads a `testimony eval` report (report.json and its bundles) and scores each clip's text as the
bundle has it, with every cut restored (`text + cut.text`: what the decoder wrote), and re-cut by
the current `asr.loops` from the restored text (the cut is applied after decoding, to the decoded
text alone, so this equals a fresh run of the current code on the same decoded segments). Lists the
segments the current code cuts.

    .venv/bin/python bench/loops.py REPORT_DIR [REPORT_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.asr.core import COMPRESSION_RATIO_THRESHOLD  # noqa: E402
from pipeline.asr.loops import cut_loop  # noqa: E402
from pipeline.evaluation.evaluate import score_text  # noqa: E402
from pipeline.transcript import Segment, Word  # noqa: E402

WAYS = ("as kept", "uncut", "re-cut")


def texts(segment: dict) -> tuple[str, str, str, Segment]:
    """The segment's text as kept, restored, and cut again by the current code (and that segment)."""
    cut = segment.get("cut") or {}
    whole = segment["text"] + cut.get("text", "")
    words = None if segment["words"] is None else [Word(**w) for w in segment["words"] + (cut.get("words") or [])]
    again = Segment(0, segment["start"], segment["end"], whole, words=words,
                    compression_ratio=segment["compression_ratio"])
    if again.compression_ratio > COMPRESSION_RATIO_THRESHOLD:
        cut_loop(again)
    return segment["text"], whole, again.text, again


def score(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    totals = {way: [0, 0, 0, 0] for way in WAYS}
    for clip in report["clips"]:
        segments = json.loads((Path(clip["bundle"]) / "transcript.json").read_text(encoding="utf-8"))["segments"]
        ways = [texts(s) for s in segments]
        for n, way in enumerate(WAYS):
            s = score_text(clip["reference"], " ".join(w[n] for w in ways), clip["language"])
            for k, key in enumerate(("word_edits", "ref_words", "char_edits", "ref_chars")):
                totals[way][k] += s[key]
        for *_, seg in ways:
            if seg.cut:
                print(f"  {clip['id']}: kept …{seg.text[-40:]!r}, cut {seg.cut['repeats']} copies "
                      f"({len(seg.cut['text'])} characters)")
    engine = report["settings"].get("engine") or "whisper"
    for way, (we, rw, ce, rc) in totals.items():
        print(f"{report_dir} ({engine}) {way}: WER {100 * we / rw:.1f}%  CER {100 * ce / rc:.1f}%")


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        score(Path(folder))
