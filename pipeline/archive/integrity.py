"""Verify bundles against their manifests, custody logs and originals; export one as a checkable zip.

A bundle's manifest.json lists the SHA-256 of every file beside it; the custody log records the
manifest's own hash at publishing and where the original was on arrival. `verify_bundle` re-hashes all
of it. `export_bundle` packs a verified bundle, its custody log and optionally the original into a zip
with a SHA256SUMS file, so another party can check it with nothing but `sha256sum -c`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pipeline import __version__, atomic
from pipeline.archive import custody, originals
from pipeline.archive.bundle import MANIFEST, TRANSCRIPT, files_problems
from pipeline.errors import TestimonyError
from pipeline.hashing import file_sha256
from pipeline.names import display_name
from pipeline.transcript import read_json

SUMS = "SHA256SUMS"
UNLOGGED = "none logged; if a save was killed before logging it, `testimony repair` logs it when its files check out"
README = "VERIFY.txt"


class IntegrityError(TestimonyError):
    """An export was refused: the bundle does not verify, or the original is out of reach."""


@dataclass
class Report:
    """What verifying one bundle found. `problems` make verification fail; `notes` do not."""

    bundle: Path
    sha256: str | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    original: Path | None = None  # the original that was re-hashed and matched

    @property
    def ok(self) -> bool:
        return not self.problems


def bundles_in(archive: Path) -> list[Path]:
    """Every published bundle folder of the archive (one with a manifest or a transcript)."""
    if not archive.is_dir():
        return []
    return [p for p in sorted(archive.iterdir()) if p.is_dir() and not p.name.startswith(".")
            and ((p / MANIFEST).is_file() or (p / TRANSCRIPT).is_file())]


def revision_problems(archive: Path, bundle: Path, sha256: str) -> list[str]:
    """The review's chain of revisions, and each saved revision against the hash custody logged for it."""
    from pipeline.archive import revisions

    chain, problems = revisions.read_chain(bundle)
    if problems:
        return problems
    logged = custody.revision_hashes(archive, sha256)
    for revision in chain[1:]:
        if logged.get(revision.number) != revision.sha256:
            problems.append(f"{bundle.name}/{revisions.file_name(revision.number)}: not the revision custody "
                            f"logged ({UNLOGGED if revision.number not in logged else 'another hash'})")
    return problems


def _check_original(name: str, sha256: str, path: Path, report: Report) -> None:
    if not path.is_file():
        report.problems.append(f"{name}: original {path}: not found")
        return
    if (now := file_sha256(path)) != sha256:
        report.problems.append(f"{name}: original {path}: changed (sha256 {now}, the transcript's "
                               f"source.sha256 is {sha256})")
    else:
        report.original = path


def verify_bundle(archive: str | Path, bundle: str | Path, original: str | Path | None = None) -> Report:
    """Re-hash the bundle's files, check its custody chain, and re-hash the original when reachable.

    The original is `original` when given, else the archive's read-only copy, else the newest arrival
    path in the custody log that still exists. Nothing is written, so a read-only forensic copy can be
    verified and verifying changes nothing; `repair` puts right what a crash left.
    """
    archive, bundle = Path(archive), Path(bundle)
    name = bundle.name
    sha256, problems = files_problems(bundle)
    report = Report(bundle, sha256, problems)
    if sha256 is None:
        return report
    if not custody.log_path(archive, sha256).is_file():
        report.notes.append(f"{name}: no custody log (the bundle was made before custody logging, or "
                            "copied in without it)")
    report.problems += [f"{name}: {p}" for p in custody.check_chain(archive, sha256)]
    report.problems += revision_problems(archive, bundle, sha256)
    recorded = custody.last_manifest_sha256(archive, sha256)
    if recorded and (bundle / MANIFEST).is_file() and file_sha256(bundle / MANIFEST) != recorded:
        report.problems.append(f"{name}/{MANIFEST}: changed since publishing (the custody log recorded "
                               f"sha256 {recorded}; if a run was killed after publishing, `testimony repair` logs "
                               "its publish when its files check out)")
    if original is not None:
        _check_original(name, sha256, Path(original), report)
    else:
        kept = originals.find_kept(archive, sha256)
        reachable = [p for p in custody.arrival_paths(archive, sha256) if p.is_file()]
        if kept is not None:  # the archive's read-only copy is the evidence; the inbox file may move on
            _check_original(name, sha256, kept, report)
        elif preserved := custody.preserved_paths(archive, sha256):
            report.problems.append(f"{name}: the archive's copy of the original ({preserved[0]}) is missing")
        elif reachable:
            _check_original(name, sha256, reachable[0], report)
        else:
            report.notes.append(f"{name}: original not reachable, not re-hashed (pass --original PATH)")
    return report


def leftovers(archive: Path) -> list[str]:
    """What a publish killed half way left beside the bundles: a bundle it moved aside is a problem (it may
    be the only copy), a staging folder only a note; `testimony repair` puts both right."""
    found = []
    for folder in sorted(p for p in archive.glob(".*.old-*") if p.is_dir()):
        found.append(f"{folder.name}: a bundle a publish moved aside and did not remove (killed half way?): "
                     "`testimony repair` puts it back if it is the only copy")
    for folder in sorted(p for p in archive.glob(".*.partial-*") if p.is_dir()):
        found.append(f"note: {folder.name}: the staging folder of a publish (in progress, or killed half way: "
                     "`testimony repair` removes it)")
    return found


def _arcname(name: str) -> str:
    """A file name safe in a zip and on one SHA256SUMS line: no slashes, backslashes or control chars."""
    safe = "".join("_" if c in "/\\" or ord(c) < 32 or ord(c) == 127 else c for c in name).strip()
    return safe if safe not in ("", ".", "..") else "original"


def _verify_text(bundle: str, sha256: str, original: str | None, formats: list[str]) -> str:
    lines = [
        f"Evidence export of transcript bundle {bundle}",
        f"Source video SHA-256: {sha256}",
        f"Made by testimony {__version__}.",
        "",
        "To check it (GNU coreutils), in the folder you extracted the zip into:",
        "",
        f"    sha256sum -c {SUMS}",
        "",
        "Every line must say OK. SHA256SUMS lists every file in the zip but itself. Then:",
        f"- {bundle}/{MANIFEST} lists the SHA-256 of each bundle file; {TRANSCRIPT} names the",
        "  source video's SHA-256 in source.sha256, which must equal the one above.",
        f"- custody/{sha256}.jsonl is the chain-of-custody log: one JSON event per line (arrival,",
        "  processing stages with tools and versions, reviews, exports, repairs); each line's `prev` is the SHA-256",
        "  of the line before it (64 zeros for the first), so an edited line breaks the chain.",
    ]
    if original:
        lines.append(f"- {original} is the original video; its SHA-256 must equal the one above.")
    else:
        lines.append("- The original video is not included: hash your copy (sha256sum FILE) and compare.")
    if formats:
        lines.append(f"- documents/ holds {', '.join(formats)} renderings of the newest revision, made at export "
                     f"from {bundle}/{TRANSCRIPT}: readable copies, not part of the bundle or its manifest.")
    lines += ["", "Ask the sender for the SHA-256 of the zip or of SHA256SUMS over a separate channel:",
              "anyone able to change the files could also rewrite SHA256SUMS.", ""]
    return "\n".join(lines)


def _received_name(bundle: Path, original: Path) -> str:
    """The name the original arrived under (the archive keeps its copy under its SHA-256)."""
    try:
        return read_json(bundle / TRANSCRIPT)["source"]["file_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return display_name(original)


def _add_documents(zf: zipfile.ZipFile, bundle: Path, formats: list[str], sums: list[tuple[str, str]]) -> None:
    """The documents asked for, made from the verified bundle, beside it in the zip (never into it)."""
    from pipeline.archive import documents

    for fmt in formats:
        arc = f"documents/{documents.file_name(bundle.name[:12], fmt)}"
        data = documents.document(bundle, fmt)
        zf.writestr(arc, data)
        sums.append((hashlib.sha256(data).hexdigest(), arc))


def export_bundle(archive: str | Path, bundle: str | Path, dest: str | Path, *,
                  with_original: bool = False, formats: Sequence[str] = ()) -> Path:
    """Write a zip of the verified bundle, its custody log, SHA256SUMS and VERIFY.txt (and the original,
    and the documents of `formats`: `documents/<id>.docx`, ...).

    Refuses (IntegrityError) a bundle that does not verify, or an unreachable original. The zip is
    written under a temporary name and renamed into place; an `export` event is logged.
    """
    archive, bundle, dest = Path(archive), Path(bundle), Path(dest)
    if dest.exists():
        raise IntegrityError(f"{dest} already exists: choose another name or remove it first")
    report = verify_bundle(archive, bundle)
    if not report.ok or report.sha256 is None:
        raise IntegrityError(f"{bundle.name} does not verify, not exported: " + "; ".join(report.problems)
                             + " (run `testimony verify` for details)")
    sha256 = report.sha256
    if with_original and report.original is None:
        seen = ", ".join(str(p) for p in custody.arrival_paths(archive, sha256)) or "none recorded"
        raise IntegrityError(f"the original of {bundle.name} is not reachable at its arrival path(s) "
                             f"({seen}): mount or restore it there, or export without --with-original")
    sums: list[tuple[str, str]] = []
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
                arc = f"{bundle.name}/{path.relative_to(bundle).as_posix()}"
                zf.write(path, arc)
                sums.append((file_sha256(path), arc))
            log = custody.log_path(archive, sha256)
            data = log.read_bytes() if log.is_file() else b""
            zf.writestr(f"custody/{sha256}.jsonl", data)
            sums.append((hashlib.sha256(data).hexdigest(), f"custody/{sha256}.jsonl"))
            original_arc = None
            if with_original:
                original_arc = "original/" + _arcname(_received_name(bundle, report.original))
                zf.write(report.original, original_arc, compress_type=zipfile.ZIP_STORED)
                sums.append((sha256, original_arc))  # just re-hashed and matched
            _add_documents(zf, bundle, list(formats), sums)
            text = _verify_text(bundle.name, sha256, original_arc, list(formats)).encode("utf-8")
            zf.writestr(README, text)
            sums.append((hashlib.sha256(text).hexdigest(), README))
            sums_text = "".join(f"{digest}  {arc}\n" for digest, arc in sums).encode("utf-8")
            zf.writestr(SUMS, sums_text)
        atomic.publish(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    custody.append(archive, sha256, "export", tool="testimony", version=__version__, bundle=bundle.name,
                   path=str(dest.resolve()), zip_sha256=file_sha256(dest),
                   sums_sha256=hashlib.sha256(sums_text).hexdigest(), with_original=with_original,
                   documents=list(formats))
    return dest
