"""`testimony list`, `get` and `search`: reading the archive through its catalog.

Each command first syncs the catalog with the bundles on disk, so bundles written before the catalog
existed (or copied in from another machine) are found without a separate step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config
from pipeline.archive import catalog, documents
from pipeline.archive.bundle import TRANSCRIPT
from pipeline.archive.formats import bilingual, english, original, render_srt, render_txt, render_vtt
from pipeline.cli.errors import guarded
from pipeline.transcript import Transcript

FORMATS = ("txt", "srt", "vtt", "json", *documents.FORMATS)
RENDER = {"txt": render_txt, "srt": render_srt, "vtt": render_vtt}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register list, get and search on the `testimony` parser."""
    ls = sub.add_parser("list", help="the videos in the archive: id, language, duration, segments, status "
                        "(failed, or the review state: machine draft, in review, reviewed)")
    ls.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")

    get = sub.add_parser("get", help="print (or save) one video's transcript in a format and language")
    get.add_argument("video", help="id (first 12 hex digits of the SHA-256, or fewer), full SHA-256, or file name")
    get.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")
    get.add_argument("--format", choices=FORMATS, default="txt", help="default: txt; docx (bilingual table), "
                     "csv and xlsx (a row per segment), ohms (OHMS XML) are documents of the whole testimony")
    get.add_argument("--lang", help="kk, ug, en, or bilingual as kk-en, ug-en (default: bilingual when "
                     "translated, else the original)")
    get.add_argument("-o", "--output", type=Path, help="write to this file instead of standard output")

    search = sub.add_parser("search", help="find segments holding every word of a query, in any script")
    search.add_argument("query", help="words to find (all of them); end a word with * to match its "
                        "suffixed forms too, e.g. лагерь* finds лагерьде, лагерьге")
    search.add_argument("--lang", type=str.lower, help="en: English text only; kk, ug, ...: the original "
                        "text of videos in that language (default: both)")
    search.add_argument("--out", help="archive root (default: $TESTIMONY_OUT, else transcripts/)")
    search.add_argument("--limit", type=int, default=50, help="most hits to show, best first (default: 50)")
    search.add_argument("--speaker", help="only what one speaker says: a label (S1, S2, ...) or the name "
                        "given with --speaker-names, the sidecar or review")


def _one_line(text: str | None) -> str:
    """File names and segment text may hold newlines or tabs; one hit stays one line."""
    return " ".join((text or "").split())


def _clock(seconds: float | None, decimals: bool = False) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    tail = f".{int(seconds * 10) % 10}" if decimals else ""
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}{tail}"


def _open_archive(out: str | None) -> Path:
    """The archive, synced; a folder that is not there is an error rather than a new empty archive."""
    archive = config.archive_dir(out)
    if not archive.is_dir():
        raise catalog.CatalogError(f"no archive at {archive}: pass --out, set TESTIMONY_OUT, or run "
                                   "`testimony run` first")
    catalog.sync(archive, on_error=lambda bundle, exc: print(
        f"warning: {bundle} is not indexed ({exc}); the bundle was left as it is", file=sys.stderr))
    return archive


_guarded = guarded


@_guarded
def cmd_list(args: argparse.Namespace) -> int:
    """A table of the archive; the file name comes last so right-to-left names cannot shift columns.
    A bundle's status is its review state, so a reviewed testimony never reads as the machine's "done"."""
    archive = _open_archive(args.out)
    videos = catalog.list_videos(archive)
    if not videos:
        print(f"no videos in {archive}", file=sys.stderr)
        return 0
    rows = [("ID", "LANG", "DURATION", "SEGMENTS", "STATUS", "FILE")]
    rows += [(v.id, v.language or "-", _clock(v.duration), str(v.segments), v.state, _one_line(v.file_name))
             for v in videos]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i in (2, 3) else r[i].ljust(widths[i]) for i in range(5)]
        print("  ".join(cells + [r[5]]).rstrip())
    return 0


def renderings_of(transcript: Transcript) -> list[str]:
    """Languages the transcript can be rendered in: original, and English plus bilingual when translated."""
    src = transcript.language or "und"
    if transcript.needs_translation and transcript.has_translation:
        return [f"{src}-en", src, "en"]
    return [src]


def render(bundle: Path, transcript: Transcript, fmt: str, lang: str) -> str:
    """The bundle's own file when it has one (hashed in its manifest), else rendered from transcript.json.

    Bundles carry no bilingual .txt; it is rendered here with a blank line between segments.
    """
    if fmt == "json":
        return (bundle / TRANSCRIPT).read_text(encoding="utf-8")
    stored = bundle / f"{lang}.{fmt}"
    if stored.is_file():
        return stored.read_text(encoding="utf-8")
    src = transcript.language or "und"
    line = {src: original, "en": english, f"{src}-en": bilingual}[lang]
    if fmt == "txt" and lang == f"{src}-en":
        return "\n".join(f"{text}\n" for seg in transcript.segments if (text := bilingual(seg).strip()))
    return RENDER[fmt](transcript, line)


@_guarded
def cmd_get(args: argparse.Namespace) -> int:
    """One video's transcript: by id, SHA-256 or file name, in the format and language asked for."""
    archive = _open_archive(args.out)
    video = catalog.resolve(archive, args.video)
    if video.bundle is None:
        raise catalog.CatalogError(f"{video.id} ({_one_line(video.file_name)}) has no transcript: its "
                                   f"processing {video.status}")
    bundle = archive / video.bundle
    if args.format in documents.FORMATS:
        return _get_document(bundle, args)
    transcript = Transcript.load(bundle / TRANSCRIPT)
    langs = renderings_of(transcript)
    lang = (args.lang or langs[0]).lower()
    if args.format != "json" and lang not in langs:
        why = ""
        if lang in ("en", f"{transcript.language}-en") and transcript.needs_translation:
            why = " it has no English translation (its segments are flagged untranslated);"
        raise catalog.CatalogError(
            f"{video.id} ({_one_line(video.file_name)}) has no {lang!r} rendering:{why} available: "
            + ", ".join(f"--lang {x}" for x in langs) + ", or --format json")
    text = render(bundle, transcript, args.format, lang)
    if args.output:
        args.output.write_text(text, encoding="utf-8", newline="\n")
        print(f"{args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def _get_document(bundle: Path, args: argparse.Namespace) -> int:
    """A document to a file, or to a pipe; a binary one is never poured onto a terminal."""
    if args.output:
        print(documents.write_document(bundle, args.format, args.output), file=sys.stderr)
        return 0
    if args.format in ("docx", "xlsx") and sys.stdout.isatty():
        raise catalog.CatalogError(f"{args.format} is a binary file: save it with -o FILE "
                                   f"(e.g. -o {documents.file_name(bundle.name[:12], args.format)})")
    sys.stdout.flush()
    sys.stdout.buffer.write(documents.document(bundle, args.format))
    sys.stdout.buffer.flush()
    return 0


@_guarded
def cmd_search(args: argparse.Namespace) -> int:
    """One line per matching segment; exit 1 when nothing matches, as grep does."""
    archive = _open_archive(args.out)
    if not catalog.fts_query(args.query):
        print(f"error: nothing to search for in {args.query!r}: give at least one word", file=sys.stderr)
        return 2
    if args.speaker and not catalog.speaker_known(archive, args.speaker):  # unknown, like an unknown id: 2
        print(f"error: no speaker is named {args.speaker!r} in {archive}: give a label (S1, S2, ...) or a name "
              "that --speaker-names, a sidecar or a review gave", file=sys.stderr)
        return 2
    hits = catalog.search(archive, args.query, args.lang, limit=args.limit, speaker=args.speaker)
    for hit in hits:
        who = f"{_one_line(hit.speaker)}: " if hit.speaker else ""
        print(f"{hit.id}  {_one_line(hit.file_name)}  [{_clock(hit.start, True)}-{_clock(hit.end, True)}]  "
              f"{who}{_one_line(hit.snippet)}")
    if not hits and "*" not in args.query:
        print("no match. Kazakh and Uyghur words take suffixes: end a word with * to find its other "
              "forms too (e.g. лагерь* finds лагерьде)", file=sys.stderr)
    elif not hits:
        print(f"no match for {args.query!r} in {archive}", file=sys.stderr)
    return 0 if hits else 1
