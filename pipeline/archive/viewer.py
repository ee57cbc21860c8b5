"""The bundle's `index.html`: the video beside its bilingual transcript, opened straight from disk.

One self-contained page, because bundles are read on offline machines and copied around on drives:
inline CSS and JS only, no fonts or scripts from anywhere, and a Content-Security-Policy that allows
just the page's own script and style (by hash) and media from local files, so even a transcript
that slipped hostile text past the escaping could not load or run anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from pipeline.transcript import Transcript

INDEX = "index.html"

_TEMPLATE = resources.files(__package__).joinpath("viewer_template.html").read_text(encoding="utf-8")

REVIEW_PORT = 4300  # `testimony serve`'s default --review-port
REVIEW_PORT_ENV = "TESTIMONY_REVIEW_PORT"  # the port serve and review were given, for what they run


def _inline_hash(tag: str) -> str:
    """CSP source for the template's one inline `<tag>` block (the data block is JSON, never run)."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", _TEMPLATE, flags=re.S)
    if len(blocks) != 1:
        raise RuntimeError(f"viewer template must have exactly one plain <{tag}> block, found {len(blocks)}")
    digest = hashlib.sha256(blocks[0].encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


CSP = "; ".join([
    "default-src 'none'",
    f"script-src {_inline_hash('script')}",
    f"style-src {_inline_hash('style')}",
    "media-src 'self' file:",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
])


def _script_safe_json(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment: `<`, `>`, `&` become escapes.

    JSON.parse reads the escapes back as the same characters, so segment text round-trips exactly.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def render_viewer(transcript: Transcript, video_href: str | None) -> str:
    """The viewer page for `transcript`; `video_href` is a URL relative to the bundle, or None.

    Word timings are left out: the viewer does not use them and they would multiply the page's size.
    Flags are those standing after review (`Segment.standing_flags`), as every document shows them.
    """
    data = transcript.to_dict()
    data["segments"] = [{**{k: v for k, v in raw.items() if k != "words"}, "flags": seg.standing_flags()}
                        for raw, seg in zip(data["segments"], transcript.segments)]
    return render_page(data, video_href, review_link(transcript.id), transcript.source.file_name)


def render_page(data: dict[str, Any], video_href: str | None, review: str | None, title: str) -> str:
    """The viewer over a transcript already in its JSON form (a bundle's, or a public redacted one)."""
    payload = _script_safe_json({"transcript": data, "video": video_href, "review": review})
    values = {"CSP": html.escape(CSP, quote=True), "DATA": payload,
              "TITLE": html.escape(f"{title} — transcript", quote=True)}
    # One pass: text that was filled in (a file name, a segment) is never searched for placeholders.
    return re.sub(r"\{\{(CSP|TITLE|DATA)\}\}", lambda m: values[m.group(1)], _TEMPLATE)


def use_review_port(port: int) -> None:
    """Links made in this process (and those it starts) point at the workspace on `port` (0: none)."""
    os.environ[REVIEW_PORT_ENV] = str(port)


def review_port() -> int | None:
    """The port of this machine's review workspace: the one `serve --review-port` or `review --port` was
    given when they made the link, else the default; None when serve runs without a workspace."""
    value = os.environ.get(REVIEW_PORT_ENV, "").strip()
    return (int(value) or None) if value.isdigit() else REVIEW_PORT


def workspace_url(path: str) -> str | None:
    """`path` in the review workspace on this machine, or None when there is none."""
    port = review_port()
    return f"http://127.0.0.1:{port}{path}" if port else None


def review_link(transcript_id: str) -> str | None:
    """The editor of this transcript in the review workspace serve runs on this machine."""
    return workspace_url(f"/edit/{transcript_id}")


def video_href(video: str | Path | None, bundle: str | Path) -> str | None:
    """URL of `video` relative to the bundle folder, or None when it cannot be linked.

    Relative, so an archive moved together with its videos keeps working; None when the video is
    gone or on another drive (Windows), where the viewer names the original by file name and SHA-256.
    """
    if video is None or not os.path.isfile(video):
        return None
    try:
        rel = os.path.relpath(os.path.abspath(video), os.path.abspath(bundle))
    except ValueError:
        return None
    # Bytes, so a file name that is not valid UTF-8 is percent-encoded exactly as it sits on disk.
    raw = os.fsencode(rel)
    if os.sep != "/":
        raw = raw.replace(os.fsencode(os.sep), b"/")
    return quote(raw, safe="/")


def linked_video(bundle: str | Path) -> Path | None:
    """The video an existing bundle's viewer links to, when it is still there.

    Lets a rewrite that does not know the source (e.g. a retranslation) keep the viewer's link.
    """
    try:
        page = (Path(bundle) / INDEX).read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r'<script type="application/json" id="transcript-data">(.*?)</script>', page, flags=re.S)
    try:
        href = json.loads(found.group(1))["video"] if found else None
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(href, str):
        return None
    path = Path(bundle) / os.fsdecode(unquote_to_bytes(href))
    return path if path.is_file() else None
