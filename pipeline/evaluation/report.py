"""`report.md` for `testimony eval`: the figures a person reads, rendered from report.json's data."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(text: str | None, limit: int = 80) -> str:
    """Text safe inside a Markdown table cell, shortened."""
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(report: dict[str, Any]) -> str:
    """The report a person reads: the setup, a table per language, notes, then every clip."""
    lines = [*_header(report), *_per_language(report), *_notes(report), *_clips(report)]
    return "\n".join(lines)


def _header(report: dict[str, Any]) -> list[str]:
    model, settings, machine = report["model"], report["settings"], report["machine"]
    return [
        "# testimony eval",
        "",
        f"- created {report['created']}; manifest `{report['manifest']}`",
        f"- ASR model `{model['name']}` (sha256 {model['sha256'][:12]}, {model['origin']}), loaded in "
        f"{model['load_s']} s, not counted in any clip's time",
        f"- language: `{report['mode']}` ("
        + ("each clip's own language forced; language ID from a separate detection pass"
           if report["mode"] == "clip" else "detected by the pipeline, as `testimony run` does") + ")",
        f"- language ID among: {settings.get('expect') or 'any'} (`--expect`)",
        f"- engine: {settings.get('engine') or 'whisper'}",
        f"- decoding: beam {settings.get('beam_size') or 'greedy'}, VAD {settings.get('vad')}, word timestamps "
        f"{settings.get('word_timestamps')}, temperature fallback {settings.get('temperature_fallback')}, "
        f"translation {settings.get('translate_to_english')}",
        f"- machine: {machine['platform']}, {machine['cpus']} CPUs, torch "
        f"{machine['torch']} ({machine['torch_threads']} threads) on "
        f"{machine['device']}; load average (1/5/15 min) before "
        f"{machine.get('load_average_before')}, after {machine.get('load_average_after')}",
        "",
    ]


def _per_language(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Per language",
        "",
        "WER/CER are corpus figures (total edits / total reference words or characters) after the "
        "normalisation named below. RTF = pipeline seconds / audio seconds.",
        "",
        "| language | clips | failed | audio s | WER | CER | chrF | BLEU | language ID | RTF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for language, entry in report["languages"].items():
        tr, lid = entry["translation"], entry["language_id"]
        lid_text = (f"{lid['correct']}/{lid['total']} ({_pct(lid['accuracy'])})" if lid["detectable"]
                    else f"n/a (not a Whisper class; 0/{lid['total']})")
        lines.append(
            f"| {language} | {entry['clips']} | {entry['failed']} | {entry['audio_s']} | {_pct(entry['wer'])} "
            f"| {_pct(entry['cer'])} | {_num(tr.get('chrf'), 1)} | {_num(tr.get('bleu'), 1)} | {lid_text} "
            f"| {_num(entry['rtf'], 3)} |")
    totals = report["totals"]
    lid = totals["language_id"]
    lines += [
        "",
        f"All clips: {totals['clips']} ({totals['failed']} failed), {totals['audio_s']} s of audio in "
        f"{totals['process_s']} s: RTF {_num(totals['rtf'], 3)}. Language ID {lid['correct']}/{lid['total']} "
        f"({_pct(lid['accuracy'])})"
        + (f" over the languages Whisper can detect (excluded: {', '.join(lid['excluded'])})"
           if lid["excluded"] else "")
        + (f"; detection took {totals['detect_s_mean']} s per clip, apart from the RTF."
           if totals.get("detect_s_mean") is not None else "."),
        "",
    ]
    return lines


def _notes(report: dict[str, Any]) -> list[str]:
    lines = ["## Notes per language", ""]
    for language, entry in report["languages"].items():
        lid, tr = entry["language_id"], entry["translation"]
        detected = ", ".join(f"{code} ×{n}" for code, n in lid["detected"].items())
        lines.append(f"- **{language}**: normalised as {entry['normaliser']}; detected as {detected}.")
        if "correct_any" in lid:
            anyone = ", ".join(f"{code} ×{n}" for code, n in lid["detected_any"].items())
            lines.append(f"  Among every language Whisper knows (no `--expect`): {lid['correct_any']}/{lid['total']} "
                         f"right; detected as {anyone}.")
        if not tr["clips"]:
            lines.append(f"  chrF/BLEU skipped: {tr['skipped']}")
        else:
            lines.append(f"  chrF/BLEU over {tr['clips']} clips with a reference translation.")
    return lines + [""]


def _clips(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Clips",
        "",
        "| id | lang | token | detected | WER | CER | audio s | RTF | hypothesis (as decoded) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for clip in report["clips"]:
        scores = clip["scores"]
        rtf = clip["process_s"] / clip["duration"] if clip["duration"] else None
        prob = f" ({clip['language_probability']:.2f})" if clip.get("language_probability") is not None else ""
        hyp = f"ERROR: {clip['error']}" if clip["error"] else clip["hypothesis"]
        lines.append(
            f"| {_cell(clip['id'], 30)} | {clip['language']} | {clip['whisper_token'] or '-'} | "
            f"{clip['detected_language']}{prob} | {_pct(scores['wer'])} | {_pct(scores['cer'])} | "
            f"{_num(clip['duration'], 1)} | {_num(rtf, 3)} | {_cell(hyp)} |")
    return lines + ["", "Normalised references and hypotheses, English output and each bundle's path are in "
                    "`report.json`; the bundles themselves are in `bundles/`.", ""]
