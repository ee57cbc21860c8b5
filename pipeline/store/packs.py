"""Moving models across the air gap: one file packed on a networked machine, unpacked on the offline one.

A pack is a plain tar (weights do not compress): `PACK.json` first, naming the format, the models
with their records, the routes of the languages it serves, and the SHA-256 of every other member;
then the models as they sit in a store (`whisper/NAME.pt` and its record, `argos/PACKAGE/` and its,
`ctc/NAME/` and its). Unpacking checks everything before installing anything: the format, that the
members are exactly those listed (no missing, no extra, nothing outside the store's layout), every
hash, and that each model's files are the ones its own record lists (the record is what every later
load checks), all inside a staging folder of the store. Any fault is refused naming the member, and
the store is left as it was; otherwise each model goes into place with one rename and the routes are set.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from pipeline import __version__, atomic, config
from pipeline.errors import TestimonyError
from pipeline.hashing import file_sha256
from pipeline.store import registry as model_registry
from pipeline.store import routes
from pipeline.store.registry import Installed

FORMAT = "testimony.models-pack/1"
INDEX = "PACK.json"
TOPS = ("whisper", "argos", "ctc")  # the only folders a pack may put anything in


class PackError(TestimonyError):
    """A pack that cannot be trusted or read; nothing was installed."""


def _for_language(language: str, installed: dict[str, Installed]) -> list[Installed]:
    """The installed models a language's route uses: its ASR checkpoint and its translation packages."""
    from pipeline.stages.translate import MissingTranslation, find_translator

    route = routes.route_for(language)
    chosen = [installed[route.asr_model]] if route.asr_model in installed else []
    try:
        names = [p["name"] for p in find_translator(language, "en", via=route.translate_via or None,
                                                  model=route.translate or None).packages]
    except MissingTranslation:
        names = []
    return chosen + [installed[name] for name in names if name in installed]


def _adapted(archive: str | Path | None) -> dict[str, Installed]:
    """The models adapted on `archive`'s witnesses, packable by name only (`models pack --out ARCHIVE NAME`)."""
    from pipeline.store import archive_models

    if archive is None:
        return {}
    return {name: Installed(name, "whisper", archive_models.model_path(archive, name),
                            model_registry.read_record(archive_models.model_path(archive, name)) or {})
            for name in archive_models.names(archive)}


def select(languages: list[str], names: list[str],
           archive: str | Path | None = None) -> tuple[list[Installed], dict[str, dict]]:
    """(the models to pack, the routes to carry) for `--for` languages and/or model names (an archive's
    adapted models among the names when `archive` is given; never by language)."""
    installed = {m.name: m for m in model_registry.installed_models()}
    installed |= {n: m for n, m in _adapted(archive).items() if n in names}
    unknown = [n for n in names if n not in installed]
    if unknown:
        raise PackError(f"not installed here: {', '.join(unknown)} (installed: {', '.join(installed) or 'none'})")
    chosen = {m.name: m for lang in languages for m in _for_language(lang, installed)}
    withheld = {n for n, m in chosen.items() if m.record.get("witness_derived")}
    chosen = {n: m for n, m in chosen.items() if n not in withheld} | {n: installed[n] for n in names}
    if not chosen:
        raise PackError(f"nothing to pack for {', '.join(languages + names)}: install or import the models first")
    carried = {lang: _carried(routes.route_for(lang), withheld - set(names)) for lang in languages}
    return list(chosen.values()), carried


def _carried(route: routes.Route, withheld: set[str]) -> dict[str, str]:
    """A route as a pack carries it; one whose model was trained on testimony goes without that model
    (a witness-derived model is never offered to another archive unless named), so the other store keeps
    its own."""
    fields = {k: v for k, v in vars(route).items() if k in routes.FIELDS and v}
    if route.asr_model in withheld:
        fields.pop("asr_model", None)
        fields.pop("whisper_token", None)
    return fields


def withheld(languages: list[str]) -> list[str]:
    """The witness-derived models these languages' routes use, which `--for` leaves out."""
    installed = {m.name: m for m in model_registry.installed_models()}
    return sorted({m.name for lang in languages for m in _for_language(lang, installed)
                   if m.record.get("witness_derived")})


def _members(model: Installed) -> list[Path]:
    record = model_registry.record_path(model.path)
    files = sorted(p for p in model.path.rglob("*") if p.is_file()) if model.path.is_dir() else [model.path]
    return [*files, record] if record.is_file() else files


def _member_name(path: Path, store: Path) -> str:
    """Where a member sits in the store; a link is packed under its own name, as the file it points to, and
    an archive's adapted model (named with `--out`) as a Whisper model of the other store."""
    where = path.parent.resolve() / path.name
    return where.relative_to(store).as_posix() if where.is_relative_to(store) else f"whisper/{path.name}"


def pack(dest: str | Path, languages: list[str], names: list[str], archive: str | Path | None = None) -> Path:
    """Write the pack for these languages and names to `dest` (written beside, renamed into place)."""
    dest, store = Path(dest), config.models_dir().resolve()
    if dest.exists():
        raise PackError(f"{dest} already exists: choose another name or remove it first")
    models, carried = select(languages, names, archive)
    files = [p for m in models for p in _members(m)]
    hashes = {_member_name(p, store): file_sha256(p) for p in files}
    index = {"format": FORMAT, "made_by": f"testimony {__version__}",
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "routes": carried,
             "models": [{"name": m.name, "kind": m.kind, "licence": m.record.get("licence", "")} for m in models],
             "members": hashes}
    temp = atomic.temporary_name(dest)
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            data = (json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode()
            info = tarfile.TarInfo(INDEX)
            info.size, info.mtime = len(data), int(datetime.now(timezone.utc).timestamp())
            tar.addfile(info, io.BytesIO(data))
            for path in files:
                tar.add(path.resolve(), arcname=_member_name(path, store), recursive=False)
        atomic.publish(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return dest


def _read_index(tar: tarfile.TarFile, source: Path) -> dict:
    first = tar.next()
    if first is None or first.name != INDEX or not first.isfile():
        raise PackError(f"{source}: not a testimony model pack (its first member is not {INDEX})")
    try:
        index = json.loads(tar.extractfile(first).read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackError(f"{source}: {INDEX} is unreadable ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else None
        raise PackError(f"{source}: unknown pack format {found!r} (this testimony reads {FORMAT})")
    return index


def _safe(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and parts[0] in TOPS and ".." not in parts and not PurePosixPath(name).is_absolute()


def _extract_checked(source: Path, staging: Path) -> dict:
    """Every member into `staging`, then each checked against the index; raises naming the first fault."""
    with tarfile.open(source, "r:") as tar:
        index = _read_index(tar, source)
        listed: dict[str, str] = index.get("members") or {}
        for member in tar:
            if member.name == INDEX:
                continue
            if not _safe(member.name) or not member.isfile() or member.name not in listed:
                raise PackError(f"{source}: {member.name}: not a file this pack lists; refused")
            tar.extract(member, staging, filter="data")
    for name, digest in listed.items():
        path = staging / name
        if not _safe(name) or not path.is_file():
            raise PackError(f"{source}: {name}: listed but missing from the pack; refused")
        if (now := file_sha256(path)) != digest:
            raise PackError(f"{source}: {name}: changed (listed sha256 {digest}, now {now}); refused")
    _check_records(source, staging)
    return index


def _check_records(source: Path, staging: Path) -> None:
    """Each packed model folder's files against the per-file SHA-256 of its own record, which every load
    checks later: a pack whose index was rewritten to match changed weights is refused here, not at a run."""
    for top in TOPS:
        for folder in sorted(p for p in (staging / top).glob("*") if p.is_dir()):
            record = model_registry.read_record(folder) or {}
            recorded = record.get("files") or {}
            if not recorded:  # an Argos package installed before records kept per-file hashes
                continue
            actual = {p.relative_to(folder).as_posix(): file_sha256(p) for p in folder.rglob("*") if p.is_file()}
            for rel in sorted(set(recorded) | set(actual)):
                if recorded.get(rel) != actual.get(rel):
                    what = "not in its record" if rel not in recorded else "missing" if rel not in actual else \
                        f"changed (its record says sha256 {recorded[rel]}, now {actual[rel]})"
                    raise PackError(f"{source}: {top}/{folder.name}/{rel}: {what}; refused")


def _place(staging: Path, store: Path) -> list[str]:
    """Move each checked model (file or folder, then its record) into the store; returns what moved."""
    moved = []
    for top in TOPS:
        for item in sorted((staging / top).iterdir()) if (staging / top).is_dir() else []:
            target = store / top / item.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
            moved.append(f"{top}/{item.name}")
    return moved


def unpack(source: str | Path) -> tuple[list[str], dict[str, dict]]:
    """Check the whole pack, then install it and set its routes; returns (what was placed, routes)."""
    source, store = Path(source), config.models_dir()
    if not source.is_file():
        raise PackError(f"{source}: no such pack file")
    store.mkdir(parents=True, exist_ok=True)
    staging = store / f".unpacking-{os.getpid()}"
    try:
        try:
            index = _extract_checked(source, staging)
        except tarfile.TarError as exc:
            raise PackError(f"{source}: not a readable tar file ({exc}); refused") from None
        placed = _place(staging, store)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    carried = index.get("routes") or {}
    for language, fields in carried.items():
        routes.set_route(language, **{k: v for k, v in fields.items() if k in routes.FIELDS})
    return placed, carried
