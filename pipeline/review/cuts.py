"""Where a loop the machine cut off a segment (`cut`, see `asr.loops`) goes when a save splits, merges,
restores or dismisses: decided here, from the base revision, never taken from the editor.

A cut belongs to the END of the segment it was cut from: what was heard once stays in the text, the
repeats came after it, and Restore appends `cut.text`. Every rule follows from that:

- A split leaves the cut on its last part only (the piece that starts latest); the earlier parts end
  where the speech went on, and a Restore there would put the loop in the wrong place.
- A merge keeps the cut of the segment that ends last (it is still at the merged segment's end). A
  merge that would bury an unsettled cut inside the merged text is refused, naming the segment: the
  reviewer restores the loop (it was speech) or dismisses it (it was the machine) first. Dropping it
  quietly would take the Restore away from a reviewer who never looked at it; keeping it would make
  Restore append the loop at the wrong end.
- `restore_cut` (the text holds the loop again) and `dismiss_cut` (the reviewer heard a machine loop)
  take the cut off the segment; the earlier revisions keep it, and the diff records it leaving.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.review.revisions import ReviewError


@dataclass(frozen=True)
class Claim:
    """What one segment of a save says about cuts: the base segment it continues (its own id, or the
    one a split piece came from), and whether the reviewer restored or dismissed that segment's cut."""

    family: int | None
    restore: bool = False
    dismiss: bool = False


def claim(n: int, raw: dict, family: int | None) -> Claim:
    """The editor's `restore_cut` / `dismiss_cut` of segment `n`, checked."""
    flags = {key: raw.get(key, False) for key in ("restore_cut", "dismiss_cut")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ReviewError(f"segment {n}: {key} must be true or false")
    return Claim(family, flags["restore_cut"], flags["dismiss_cut"])


def settle(segments: list[dict], claims: list[Claim], base: dict[int, dict]) -> None:
    """Place every cut of the base revision on the saved segments (in the editor's order, `claims`
    beside them), in place; a ReviewError names a merge that would bury a cut."""
    for seg in segments:
        seg.pop("cut", None)
    for family, members in _families(claims).items():
        _place(segments, claims, members, base[family])
    _merges(segments, claims, base)


def _families(claims: list[Claim]) -> dict[int, list[int]]:
    families: dict[int, list[int]] = {}
    for n, c in enumerate(claims):
        if c.family is not None:
            families.setdefault(c.family, []).append(n)
    return families


def _place(segments: list[dict], claims: list[Claim], members: list[int], origin: dict) -> None:
    """The family's cut on its last piece, unless a piece restored or dismissed it. A restore whose text
    is exactly the kept text plus the cut gets the cut's word times back too."""
    cut = origin.get("cut")
    if not cut:
        return
    tail = segments[max(members, key=lambda n: (segments[n]["start"], segments[n]["end"]))]
    if any(claims[n].restore or claims[n].dismiss for n in members):
        if (any(claims[n].restore for n in members) and tail["id"] == origin["id"] and origin.get("words") is not None
                and cut.get("words") is not None and tail["text"] == origin["text"] + cut["text"]):
            tail["words"] = [*origin["words"], *cut["words"]]
        return
    tail["cut"] = cut


def _merges(segments: list[dict], claims: list[Claim], base: dict[int, dict]) -> None:
    """Base segments gone from the save into another (their middle lies inside a saved segment): the
    segment that took them in keeps the cut of whichever ends last; any other cut is refused."""
    continued = {c.family for c in claims}
    taken: dict[int, list[dict]] = {}
    for seg_id, gone in base.items():
        if seg_id in continued:
            continue
        middle = (gone["start"] + gone["end"]) / 2
        into = next((n for n, s in enumerate(segments) if s["start"] <= middle <= s["end"]), None)
        if into is not None:
            taken.setdefault(into, []).append(gone)
    for n, gone in taken.items():
        _merged(n, segments[n], claims[n], base.get(claims[n].family), gone)


def _merged(n: int, seg: dict, claim: Claim, own: dict | None, gone: list[dict]) -> None:
    """Segment `n` took in the `gone` segments: the one ending last gives the cut it ends in. The
    segment's Restore or Dismiss answers its own cut when it had one, else the cut it took over."""
    sources = sorted([*gone, *([own] if own else [])], key=lambda s: (s["end"], s["start"]))
    last = sources[-1]
    buried = [s for s in sources[:-1] if s.get("cut") and (s is not own or seg.get("cut"))]
    if buried:
        raise ReviewError(f"segment {n}: merged with id {_other(buried[0], sources)}, but id {buried[0]['id']} "
                          f"ends in a loop the machine cut ({_named(buried[0]['cut'])}); merged, the loop would sit "
                          "inside the text, where Restore could not put it back: restore or dismiss that cut "
                          "and save, then merge")
    if last is not own:
        seg.pop("cut", None)
        answered = (claim.restore or claim.dismiss) and not (own and own.get("cut"))
        if last.get("cut") and not answered:
            seg["cut"] = last["cut"]


def _other(buried: dict, sources: list[dict]) -> int:
    return next(s["id"] for s in sources if s is not buried)


def _named(cut: dict) -> str:
    words = cut.get("text", "").strip()
    return f"«{words[:24].strip()}{' …' if len(words) > 24 else ''}» ×{cut.get('repeats')}"
