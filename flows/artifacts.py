"""What a finished run leaves in the Prefect UI: the bilingual transcript, and a table of the archive."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.archive.viewer import review_link
from pipeline.transcript import Transcript

# Artifacts travel to the server as events, which it caps at 1.5 MB: stay well below, and point at the
# bundle for the rest.
MAX_MARKDOWN_CHARS = 400_000
RECENT_ROWS = 20  # the archive overview's page


def _cell(text: str | None) -> str:
    return (text or "").replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}.{int(seconds * 10) % 10}"


def transcript_markdown(transcript: Transcript, bundle: Path) -> str:
    """Segment times, original and English side by side, cut short (and saying so) when very long."""
    src = transcript.source
    lines = [f"# {_cell(src.file_name)}", "",
             f"- SHA-256: `{src.sha256}`",
             f"- Language: {transcript.language or 'unknown'}"
             + (f" (detected {transcript.detected_language})" if transcript.detected_language else ""),
             f"- Bundle: `{bundle}` (open `index.html` there for the viewer)",
             f"- Review: [{review_link(transcript.id)}]({review_link(transcript.id)})", ""]
    lines += [f"> {_cell(w)}" for w in transcript.warnings]
    lines += ["", "| # | start | end | original | English | flags |", "|---|---|---|---|---|---|"]
    size = sum(len(line) + 1 for line in lines)

    def english(seg) -> str:  # English speech is its own English
        text = seg.text if transcript.language == "en" else seg.translation
        return _cell(text) or "_untranslated_"

    for n, seg in enumerate(transcript.segments):
        row = (f"| {seg.id} | {_clock(seg.start)} | {_clock(seg.end)} | {_cell(seg.text)} | "
               f"{english(seg)} | {', '.join(seg.flags)} |")
        if size + len(row) > MAX_MARKDOWN_CHARS:
            lines.append(f"\n_{len(transcript.segments) - n} more segments: see `{bundle}/transcript.json`._")
            break
        lines.append(row)
        size += len(row) + 1
    return "\n".join(lines) + "\n"


def artifact_key(sha256: str) -> str:
    return f"transcript-{sha256[:12]}"  # keys allow lowercase letters, digits and dashes


def publish_transcript(transcript: Transcript, bundle: Path) -> None:
    create_markdown_artifact(markdown=transcript_markdown(transcript, bundle),
                             key=artifact_key(transcript.source.sha256),
                             description=f"Linked transcript of {transcript.source.file_name}")


def refresh_archive_table(archive: Path) -> None:
    """The archive's overview: its counts, and the videos changed last (`testimony list` has all).

    A page, not the whole catalog: each run reads and stores the same few rows however large the
    archive grows.
    """
    from pipeline.archive import catalog

    rows = [{"id": v.id, "file": v.file_name, "language": v.language or "", "duration_s": round(v.duration or 0, 1),
             "segments": v.segments, "status": v.status, "bundle": v.bundle or ""}
            for v in catalog.recent_videos(archive, RECENT_ROWS)]
    counts = catalog.status_counts(archive)
    publish_archive_table(rows, sum(counts.values()), counts)


def publish_archive_table(rows: list[dict], total: int, counts: dict[str, int]) -> None:
    """One table under one key; the newest version is what the UI shows."""
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    create_table_artifact(table=rows, key="testimony-archive",
                          description=f"The archive: {total} videos ({summary}). The {len(rows)} changed last "
                          "are shown; `testimony list` has all.")
