"""The public record leaves by an allow-list: a redacted export of a real run made with a glossary and a
sidecar, reviewed by a person who wrote the names into the text, holds no glossary entry, no redacted
word, no source SHA-256 and no file name in any byte of any public file (zips opened too)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from pipeline.archive import public
from pipeline.archive.bundle import TRANSCRIPT, find_bundle
from pipeline.archive.catalog import fold
from pipeline.cli.main import main
from pipeline.review import revisions
from pipeline.review.save import save_revision

from . import media_factory as mf

TINY_FLAGS = ["--no-word-timestamps", "--no-fallback", "--no-translate"]  # random weights: the machinery, quickly
GLOSSARY = ["Гүлнар Тұрсын", "Ғұлжа", "Мерует Сәрсенбай"]  # the last is never said: only the prompt holds it
REDACT = ["Гүлнар Тұрсын", "Ғұлжа", "Gulnar Tursyn", "Ghulja"]
NAME = "witness-tape-07.mp4"


def _bytes_of(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by its relative name, and every member of a zip among them."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found[str(path.relative_to(folder))] = data
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                found |= {f"{path.name}!{m}": zf.read(m) for m in zf.namelist()}
    return found


def _leaks(files: dict[str, bytes], secrets: list[str]) -> list[str]:
    """(file, secret) for each secret a file holds: raw, or folded and in one case as search folds text."""
    out = []
    for name, data in files.items():
        text = data.decode("utf-8", "replace")
        folded = fold(text).casefold()
        out += [f"{name}: {s}" for s in secrets if s in text or fold(s).casefold() in folded]
    return out


def _glossary_run(tmp_path: Path, tiny_whisper: Path, media: Path) -> tuple[Path, str]:
    video = mf.video_from_audio(media / "kk.wav", tmp_path / NAME)
    sidecar = {"speaker_names": {"S1": "Гүлнар Тұрсын"}, "place": "Ғұлжа ауданы"}
    video.with_name(NAME + ".json").write_text(json.dumps(sidecar, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "glossary.txt").write_text("\n".join(GLOSSARY) + "\n", encoding="utf-8")
    archive = tmp_path / "archive"
    assert main(["run", str(video), "--out", str(archive), "--language", "kk", "--asr-model", str(tiny_whisper),
                 "--glossary", str(tmp_path / "glossary.txt"), *TINY_FLAGS]) == 0
    return archive, hashlib.sha256(video.read_bytes()).hexdigest()


def _review(archive: Path, sha: str) -> None:
    """A person writes the names into the first segment, with its English, and checks it."""
    newest = revisions.newest(find_bundle(archive, sha))
    segments = [dict(s) for s in newest.segments]
    segments[0] |= {"text": "Гүлнар Тұрсынның інісі Ғұлжада ұсталды", "checked": True,
                    "translation": "Gulnar Tursyn's brother was detained in Ghulja"}
    save_revision(archive, sha, base=newest.sha256, author="Aigul", segments=segments)


def test_a_redacted_export_of_a_glossary_run_holds_nothing_off_the_public_schema(tiny_whisper, media, tmp_path):
    archive, sha = _glossary_run(tmp_path, tiny_whisper, media)
    _review(archive, sha)
    private = json.loads((find_bundle(archive, sha) / TRANSCRIPT).read_text(encoding="utf-8"))
    assert "Мерует Сәрсенбай" in private["models"]["asr"]["options"]["prompt"], "a run made with the glossary"
    (tmp_path / "names.txt").write_text("\n".join(REDACT) + "\n", encoding="utf-8")
    out = tmp_path / "public"
    assert main(["export", sha[:12], "--out", str(archive), "--redact", str(tmp_path / "names.txt"),
                 "--media", "audio", "-o", str(out)]) == 0

    secrets = [word for entry in GLOSSARY + REDACT for word in entry.split()] + [
        sha, sha[:12], sha.upper(), private["glossary"]["sha256"], NAME, "witness-tape-07", "witness tape 07",
        "ауданы", str(tmp_path), str(tiny_whisper.name)]
    files = _bytes_of(out)
    assert len(files) >= 10 and "audio.m4a" in files
    assert _leaks(files, secrets) == []

    data = json.loads(files["transcript.json"])
    assert data["segments"][0]["text"] == "[REDACTED] інісі [REDACTED] ұсталды"
    assert set(data) == {"schema", "public_id", "title", "language", "detected_language", "language_probability",
                         "source", "models", "flags", "redaction", "speaker_names", "segments"}
    assert {k for seg in data["segments"] for k in seg} == set(public.SEGMENT_FIELDS) | {"flags"}
    assert data["models"]["asr"] == {k: private["models"]["asr"][k] for k in public.ASR_FIELDS}
    assert data["speaker_names"] == {"S1": "[REDACTED]"}
