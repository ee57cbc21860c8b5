"""A small development set for `testimony eval`, built at run time from Debian packages (never committed).

- English: real read speech, LibriVox clips from Debian's `pocketsphinx-testdata`, with the reference
  transcripts that package ships.
- Kazakh and Uyghur: synthetic speech, `espeak-ng -v kk` / `-v ug` reading lines of the Universal
  Declaration of Human Rights (official UN translations, `tests/data/udhr-dev.tsv`); the aligned
  English line is the reference translation. The shortest lines are taken, so a full eval with Whisper
  base takes minutes on two cores. espeak's robotic voice is not a witness's voice: these figures
  test the machinery and compare models, they do not predict accuracy on real testimonies.

Uyghur lines carry `"whisper_token": "uz"`: Whisper has no Uyghur token, and Uyghur fine-tunes are
usually trained over the Uzbek one; stock Whisper decodes them as Uzbek, and the scores say so.

    bin/make-devset DIR [--per-language N] [--languages en,kk,ug]

Real Kazakh: `bin/make-devset DIR --real-kk [FOLDER]` writes instead a manifest for the Kazakh
code-switching benchmark kept beside the repository (`../shared/data/real-kk/`, MIT; 31 clips, 3.7
minutes of spontaneous Kazakh with Russian, two YouTube channels). The clips stay where they are
(absolute paths); the reference is the benchmark's normalised written layer (`в общем`, not the
verbatim `вообщем`), which is what Whisper writes; the verbatim layer travels as `reference_verbatim`.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from pipeline.config import REPO_ROOT

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
UDHR = REPO_ROOT / "tests" / "data" / "udhr-dev.tsv"
UDHR_COLUMNS = {"kk": "kk", "ug": "ug-Arab"}
TOKENS = {"ug": "uz"}  # languages Whisper has no token for: the token the dev set decodes them with
MANIFEST = "manifest.jsonl"
REAL_KK = REPO_ROOT.parent / "shared" / "data" / "real-kk"  # CI and /work/main keep shared/ beside the clone


def librivox() -> list[tuple[str, Path, str]]:
    """(utterance id, wav, reference) for every clip Debian's pocketsphinx-testdata ships."""
    listing = LIBRIVOX / "transcription"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} not found: install Debian's pocketsphinx-testdata "
                                "(`sudo apt-get install pocketsphinx-testdata`, or run bin/setup)")
    clips = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^)]+)\)\s*", line)
        if match and (LIBRIVOX / f"{match[2]}.wav").is_file():
            clips.append((match[2], LIBRIVOX / f"{match[2]}.wav", " ".join(match[1].split())))
    return clips


def udhr(path: Path = UDHR) -> list[dict[str, str]]:
    """Rows of the aligned UDHR table (id, en, kk, ug-Arab, ...). The table is test data of the source
    checkout, not part of an installed package: without it, say where it comes from."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the aligned UDHR table is not here; it comes with a source checkout "
                                "(tests/data/udhr-dev.tsv): run make-devset from a clone of the repository")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


def speak(text: str, voice: str, out: Path) -> Path:
    """Synthetic speech with espeak-ng (robotic, but real audio whose words we know)."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng not found: `sudo apt-get install espeak-ng` (or run bin/setup)")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)
    return out


def _udhr_lines(language: str, count: int) -> list[dict[str, str]]:
    """The `count` shortest lines (by their longest Kazakh/Uyghur text), in document order."""
    rows = udhr()
    shortest = sorted(rows, key=lambda r: max(len(r[c]) for c in UDHR_COLUMNS.values()))[:count]
    return [r for r in rows if r in shortest]


def build_devset(out: Path, *, per_language: int = 5, languages: Sequence[str] = ("en", "kk", "ug")) -> Path:
    """Write clips under `out/<language>/` and `out/manifest.jsonl`; returns the manifest's path."""
    out = Path(out)
    entries: list[dict] = []
    for language in languages:
        folder = out / language
        folder.mkdir(parents=True, exist_ok=True)
        if language == "en":
            for utt, wav, reference in librivox()[:per_language]:
                shutil.copyfile(wav, folder / wav.name)
                entries.append({"id": f"en-{utt.rsplit('-', 1)[-1]}", "audio": f"en/{wav.name}",
                                "language": "en", "reference": reference,
                                "origin": f"LibriVox via pocketsphinx-testdata ({utt})"})
        elif language in UDHR_COLUMNS:
            for row in _udhr_lines(language, per_language):
                speak(row[UDHR_COLUMNS[language]], language, folder / f"{row['id']}.wav")
                entry = {"id": f"{language}-{row['id']}", "audio": f"{language}/{row['id']}.wav",
                         "language": language, "reference": row[UDHR_COLUMNS[language]],
                         "reference_en": row["en"], "origin": f"espeak-ng -v {language}, UDHR {row['id']}"}
                if language in TOKENS:
                    entry["whisper_token"] = TOKENS[language]
                entries.append(entry)
        else:
            raise ValueError(f"no dev-set source for language {language!r} (have en, kk, ug)")
    manifest = out / MANIFEST
    manifest.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return manifest


def real_kk(out: Path, data: Path = REAL_KK) -> Path:
    """`out/manifest.jsonl` for the real Kazakh clips in `data` (its `metadata.csv` and `audio/`)."""
    table = Path(data) / "metadata.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found: give the real-kk folder (--real-kk FOLDER), the one with "
                                "metadata.csv and audio/")
    entries = []
    with table.open(encoding="utf-8", newline="") as rows:
        for row in csv.DictReader(rows):
            audio = (Path(data) / "audio" / f"{row['audio_id']}.flac").resolve()
            if not audio.is_file():
                raise FileNotFoundError(f"{audio} not found (listed in {table})")
            entries.append({"id": row["audio_id"], "audio": str(audio), "language": "kk",
                            "reference": row["transcript_normalized_written"],
                            "reference_verbatim": row["transcript_verbatim"],
                            "origin": f"real-kk benchmark: {row['audio_source_link'].split('. ')[0]}"})
    Path(out).mkdir(parents=True, exist_ok=True)
    manifest = Path(out) / MANIFEST
    manifest.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make-devset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="folder to write the clips and manifest.jsonl into")
    parser.add_argument("--per-language", type=int, default=5, help="clips per language (default 5)")
    parser.add_argument("--languages", default="en,kk,ug", help="comma-separated (default en,kk,ug)")
    parser.add_argument("--real-kk", nargs="?", const=REAL_KK, type=Path, metavar="FOLDER",
                        help=f"instead, a manifest for the real Kazakh clips in FOLDER (default {REAL_KK})")
    args = parser.parse_args(argv)
    try:
        if args.real_kk:
            print(real_kk(args.dir, args.real_kk))
            return 0
        manifest = build_devset(args.dir, per_language=args.per_language,
                                languages=[c.strip() for c in args.languages.split(",") if c.strip()])
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
