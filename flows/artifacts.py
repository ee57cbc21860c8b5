"""What a finished run leaves in the Prefect UI: the bilingual transcript, and a table of the archive.

Artifacts live in the Prefect server's database. The server `testimony serve` starts keeps it inside
the archive, so there they carry the text and file names (`TESTIMONY_UI_TEXT=1`, which serve sets).
Against any other server (a shared one for workers on several machines, someone's own) they carry only
ids, counts and where to look, unless the team sets `TESTIMONY_UI_TEXT=1` knowing where that database is.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.archive.documents import offers
from pipeline.archive.documents.record import clock as _clock
from pipeline.archive.viewer import review_link
from pipeline.transcript import Transcript

# Artifacts travel to the server as events, which it caps at 1.5 MB: stay well below, and point at the
# bundle for the rest.
MAX_MARKDOWN_CHARS = 400_000
RECENT_ROWS = 20  # the archive overview's page


def _cell(text: str | None) -> str:
    return (text or "").replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


UI_TEXT = "TESTIMONY_UI_TEXT"


def carries_text() -> bool:
    """Whether artifacts may hold witnesses' words and file names (see the module's docstring)."""
    return os.environ.get(UI_TEXT, "").strip().lower() in ("1", "true", "yes", "on")


def _review_line(transcript_id: str) -> str:
    """The editor's link, on the port serve's workspace listens on (or that it has none)."""
    link = review_link(transcript_id)
    return f"- Review: [{link}]({link})" if link else "- Review: serve runs without a workspace (--review-port 0)"


def summary_markdown(transcript: Transcript) -> str:
    """The transcript without its words: the id, counts and the commands that open it on the archive."""
    flagged = sum(bool(seg.standing_flags()) for seg in transcript.segments)
    return "\n".join([f"# Transcript {transcript.id}", "",
                      f"- Language: {transcript.language or 'unknown'}",
                      f"- Segments: {len(transcript.segments)} ({flagged} flagged)",
                      f"- Open it on the archive machine: `testimony get {transcript.id}`",
                      _review_line(transcript.id), "",
                      "Documents (made on the archive machine, never stored here):", *offers(transcript.id), "",
                      f"_The text stays in the archive: this server's database is not known to be inside "
                      f"it (set {UI_TEXT}=1 to show it here)._", ""])


def transcript_markdown(transcript: Transcript, bundle: Path) -> str:
    """Segment times, original and English side by side, cut short (and saying so) when very long."""
    src = transcript.source
    lines = [f"# {_cell(src.file_name)}", "",
             f"- SHA-256: `{src.sha256}`",
             f"- Language: {transcript.language or 'unknown'}"
             + (f" (detected {transcript.detected_language})" if transcript.detected_language else ""),
             f"- Bundle: `{bundle}` (open `index.html` there for the viewer)",
             _review_line(transcript.id), "",
             "Documents (made on the archive machine, never stored here):", *offers(transcript.id), ""]
    lines += [f"> {_cell(w)}" for w in transcript.warnings]
    lines += ["", "| # | start | end | original | English | flags |", "|---|---|---|---|---|---|"]
    size = sum(len(line) + 1 for line in lines)

    def english(seg) -> str:  # English speech is its own English
        text = seg.text if transcript.language == "en" else seg.translation
        return _cell(text) or "_untranslated_"

    for n, seg in enumerate(transcript.segments):
        row = (f"| {seg.id} | {_clock(seg.start)} | {_clock(seg.end)} | {_cell(seg.text)} | "
               f"{english(seg)} | {', '.join(seg.standing_flags())} |")
        if size + len(row) > MAX_MARKDOWN_CHARS:
            lines.append(f"\n_{len(transcript.segments) - n} more segments: see `{bundle}/transcript.json`._")
            break
        lines.append(row)
        size += len(row) + 1
    return "\n".join(lines) + "\n"


def artifact_key(sha256: str) -> str:
    return f"transcript-{sha256[:12]}"  # keys allow lowercase letters, digits and dashes


def publish_transcript(transcript: Transcript, bundle: Path) -> None:
    text = carries_text()
    create_markdown_artifact(
        markdown=transcript_markdown(transcript, bundle) if text else summary_markdown(transcript),
        key=artifact_key(transcript.source.sha256),
        description=f"Linked transcript of {transcript.source.file_name if text else transcript.id}")


def refresh_archive_table(archive: Path) -> None:
    """The archive's overview: its counts, and the videos changed last (`testimony list` has all).

    A page, not the whole catalog: each run reads and stores the same few rows however large the
    archive grows.
    """
    from pipeline.archive import catalog

    named = carries_text()
    rows = [{"id": v.id, **({"file": v.file_name} if named else {}), "language": v.language or "",
             "duration_s": round(v.duration or 0, 1), "segments": v.segments,
             "status": v.status if named else v.status.split(":")[0],  # a reason can name the file
             **({"bundle": v.bundle or ""} if named else {})}
            for v in catalog.recent_videos(archive, RECENT_ROWS)]
    counts: dict[str, int] = {}
    for status, n in catalog.status_counts(archive).items():
        key = status if named else status.split(":")[0]
        counts[key] = counts.get(key, 0) + n
    publish_archive_table(rows, sum(counts.values()), counts)


def publish_archive_table(rows: list[dict], total: int, counts: dict[str, int]) -> None:
    """One table under one key; the newest version is what the UI shows."""
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    create_table_artifact(table=rows, key="testimony-archive",
                          description=f"The archive: {total} videos ({summary}). The {len(rows)} changed last "
                          "are shown; `testimony list` has all.")
