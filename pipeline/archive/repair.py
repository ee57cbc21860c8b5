"""`testimony repair`: finish or undo what a crash left half-done, each step logged in custody.

`verify` only reads, so a forensic copy can be checked and a check changes nothing; what a kill or a
power cut leaves is put right here instead, and only where it is certain: a publish killed half way
(its staging folder goes, a retired bundle that is the only copy comes back), a custody line cut off
(set aside, `custody.repair_torn_tail`; the access log's too), and work that landed whole but was never
logged (a copied original, a published bundle, a saved revision), logged with `recovered` once its
hashes check out.
Anything else stays a problem for `verify` to name.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import __version__
from pipeline.archive import access, custody, originals
from pipeline.archive.bundle import find_bundle, source_of, tidy_after_kill
from pipeline.archive.integrity import bundles_in
from pipeline.archive.locks import bundle_lock


def repair(archive: str | Path, sha256: str | None = None) -> list[str]:
    """Repair the archive (or one video's part of it); one line per thing done, [] when all was well."""
    archive = Path(archive)
    if sha256:  # one video: its leftovers are tidied under its lock (the whole archive locks per video)
        with bundle_lock(archive, sha256):
            done = _tidy(archive, sha256[:12])
    else:
        done = _tidy(archive, "") + _repair_access(archive)
    bundles = {b.name[:12]: b for b in bundles_in(archive)}  # one listing, not one per video
    for sha in [sha256] if sha256 else _videos(archive):
        done += [f"{sha[:12]}: {line}" for line in repair_video(archive, sha, bundles.get(sha[:12]))]
    return done


def repair_video(archive: Path, sha256: str, bundle: Path | None = None) -> list[str]:
    """The custody log of one video made whole and complete again (`bundle`: its folder, else looked up);
    what was done. Under the video's bundle lock, so a save or publish is never caught between its
    rename and its custody line (which would log its revision twice)."""
    with bundle_lock(archive, sha256):
        return _repair_video(archive, sha256, bundle)


def _repair_video(archive: Path, sha256: str, bundle: Path | None) -> list[str]:
    done = []
    if torn := custody.repair_torn_tail(archive, sha256):
        done.append(f"a custody line a crash cut off ({torn['size']} bytes) set aside in {custody.DIR}/{torn['kept']}")
    if event := originals.record_unlogged(archive, sha256):
        done.append(f"the archive's copy of the original ({event['path']}) was not logged: re-hashed, logged")
    bundle = bundle or find_bundle(archive, sha256)
    if bundle is None or source_of(bundle).get("sha256") != sha256:
        return done
    for event in custody.record_unlogged_revisions(archive, sha256, bundle):
        done.append(f"revision {event['revision']} of {bundle.name} was not logged: its files check out, logged")
    if custody.record_unlogged_publish(archive, sha256, bundle):
        done.append(f"the publish of {bundle.name} was not logged: its files check out, logged")
    return done


def _repair_access(archive: Path) -> list[str]:
    """The access log's line a crash cut off, set aside (and logged there) as a custody line's is."""
    if torn := access.repair_torn_tail(archive):
        return [f"an access log line a crash cut off ({torn['detail']['size']} bytes) set aside in "
                f"{torn['detail']['kept']}"]
    return []


def _videos(archive: Path) -> list[str]:
    """Every video with a custody log or a kept original."""
    logs = {p.stem for p in (archive / custody.DIR).glob("*.jsonl")}
    kept = {p.name[:64] for p in (archive / originals.DIR).glob("*") if not p.name.startswith(".")}
    return sorted(name for name in logs | kept if len(name) == 64)


def _tidy(archive: Path, prefix: str) -> list[str]:
    """What killed publishes left (`tidy_after_kill`), undone; a retired bundle put back is logged."""
    staging = [p for p in archive.glob(f".{prefix}*.partial-*") if p.is_dir()]
    retired = [(p, source_of(p).get("sha256")) for p in archive.glob(f".{prefix}*.old-*") if p.is_dir()]
    orphans = [(p, sha) for p, sha in retired if sha and find_bundle(archive, sha) is None]
    tidy_after_kill(archive, prefix)
    done = [f"{p.name}: the staging folder of a publish killed half way, removed" for p in staging if not p.exists()]
    for folder, sha in orphans:
        if folder.exists() or (bundle := find_bundle(archive, sha)) is None:
            continue  # its writer still runs
        done.append(f"{bundle.name}: a publish killed half way had moved it aside, the only copy: put back")
        custody.append(archive, sha, "repair", repaired="retired-bundle-restored", tool="testimony",
                       version=__version__, bundle=bundle.name)
    return done
