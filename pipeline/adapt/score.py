"""Held-out recordings scored through the real transcription path, before and after adaptation.

Each held-out segment becomes a clip for `testimony eval`'s own `run_clip` (extraction, VAD, the
engine, the bundle), with the checked text as the reference, scored by the project's normalisation
(`evaluation.textnorm` through `evaluate.score_text`). Figures are corpus figures: total edits over
total reference words (or characters), per recording and overall, never a mean of rates.
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.adapt.pairs import Recording
from pipeline.stages.media import SAMPLE_RATE


def _write_wav(audio: np.ndarray, path: Path) -> Path:
    """16-bit PCM, as the pipeline's own extraction writes it, so the clip decodes as the original did."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path


def settings_for(model: str, token: str, device: str | None) -> dict[str, Any]:
    """The settings a scoring run transcribes with: the model, its token, greedy and no extras, so the
    before and after differ only by the weights."""
    return {"asr_model": model, "whisper_token": token, "translate_to_english": False, "diarize": False,
            "word_timestamps": False, "temperature_fallback": False, "device": device}


def _totals(results: list[Any]) -> dict[str, Any]:
    words = sum(r.scores["ref_words"] for r in results)
    chars = sum(r.scores["ref_chars"] for r in results)
    word_edits = sum(r.scores["word_edits"] for r in results)
    char_edits = sum(r.scores["char_edits"] for r in results)
    return {"segments": len(results), "words": words, "wer": round(word_edits / words, 4) if words else None,
            "cer": round(char_edits / chars, 4) if chars else None,
            "errors": sum(1 for r in results if r.error)}


def score(model: str, language: str, token: str, held_out: list[Recording], *,
          device: str | None = None) -> dict[str, Any]:
    """WER and CER of `model` on the held-out recordings' checked segments: overall and per recording."""
    from pipeline.evaluation.evaluate import Clip, run_clip

    settings = settings_for(model, token, device)
    per_recording: dict[str, Any] = {}
    everything = []
    with tempfile.TemporaryDirectory(prefix="testimony-adapt-score-") as tmp:
        folder = Path(tmp)
        for rec in held_out:
            results = []
            for pair in rec.pairs:
                wav = _write_wav(pair.audio, folder / f"{rec.sha256[:12]}-{pair.segment}.wav")
                clip = Clip(f"{rec.sha256[:12]}#{pair.segment}", wav, language, pair.text, whisper_token=token)
                results.append(run_clip(clip, folder / "bundles", settings, "clip"))
            per_recording[rec.sha256] = _totals(results)
            everything += results
    return {"model": model, **_totals(everything), "recordings": per_recording}


def beats(after: dict[str, Any], before: dict[str, Any]) -> bool:
    """The adapted model wins when its held-out WER is lower, or equal with a lower CER."""
    if after["wer"] is None or before["wer"] is None:
        return False
    return (after["wer"], after["cer"]) < (before["wer"], before["cer"])
