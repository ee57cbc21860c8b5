"""Who speaks when: windows of voiced audio embedded, clustered into speakers, laid back on the clock.

1. Voiced regions (Silero, as for decoding, but split at pauses of 0.3 s: a turn often ends on one).
2. Windows of `WINDOW_S` every `STEP_S` inside them, each embedded by the speaker encoder.
3. Agglomerative clustering (average linkage, cosine distance, scipy) into a given number of speakers,
   or into as many as the `THRESHOLD` finds; a long recording clusters an even sample of windows and
   gives the rest their nearest speaker, so memory stays flat.
4. Labels `S1`, `S2`, … in order of first appearance; each window speaks for the time nearest its
   centre, and neighbouring windows of one speaker join into a turn.

Everything is deterministic (no sampling, a fixed sample of windows), so the same audio, encoder and
options give the same turns in any process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.speakers.encoder import SpeakerEncoder
from pipeline.stages.audio_source import AudioSource, duration
from pipeline.stages.vad import SpeechRegion, speech_regions

WINDOW_S = 1.6  # the encoder's training length (Resemblyzer's partial utterance)
STEP_S = 0.4  # a turn change is placed to within half of this
MIN_REGION_S = 0.4  # shorter voiced blips get no window of their own; their neighbours' speaker covers them
THRESHOLD = 0.4  # cosine distance between speakers' average windows above which they stay apart
MIN_SHARE = 0.05  # an automatic speaker holding less of the windows is noise, given to its nearest neighbour
MAX_CLUSTERED = 2000  # windows clustered at most (the pairwise distances grow as the square)


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str  # S1, S2, ...


@dataclass(frozen=True)
class Diarization:
    """The turns, and what the transcript records about how they were found."""

    turns: list[Turn]
    record: dict


def windows(regions: list[SpeechRegion], total: float) -> list[SpeechRegion]:
    """`WINDOW_S` windows every `STEP_S` over each region; a short region gets one window centred on it."""
    spans = []
    for region in regions:
        if region.duration < MIN_REGION_S:
            continue
        if region.duration <= WINDOW_S:
            start = min(max(0.0, (region.start + region.end - WINDOW_S) / 2), max(0.0, total - WINDOW_S))
            spans.append(SpeechRegion(start, start + WINDOW_S))
            continue
        starts = np.arange(region.start, region.end - WINDOW_S, STEP_S).tolist() + [region.end - WINDOW_S]
        spans += [SpeechRegion(round(s, 3), round(s + WINDOW_S, 3)) for s in starts]
    return spans


def cluster(vectors: np.ndarray, speakers: int | None) -> np.ndarray:
    """A cluster number per row of unit `vectors`: `speakers` of them, or as many as `THRESHOLD` finds."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) < 2 or speakers == 1:
        return np.zeros(len(vectors), int)
    sample = np.linspace(0, len(vectors) - 1, min(len(vectors), MAX_CLUSTERED)).astype(int)
    tree = linkage(vectors[sample], method="average", metric="cosine")
    if speakers:
        found = fcluster(tree, t=speakers, criterion="maxclust")
    else:
        found = _drop_small(fcluster(tree, t=THRESHOLD, criterion="distance"))
    return nearest(vectors, vectors[sample], found)


def _drop_small(found: np.ndarray) -> np.ndarray:
    """Clusters under `MIN_SHARE` of the windows (a cough, a window across two voices) are not speakers."""
    ids, counts = np.unique(found, return_counts=True)
    keep = ids[counts >= MIN_SHARE * len(found)]
    return found if len(keep) in (0, len(ids)) else np.where(np.isin(found, keep), found, 0)


def nearest(vectors: np.ndarray, sample: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Each vector's closest cluster centre (clusters numbered 0 are unassigned and left out)."""
    ids = [i for i in np.unique(found) if i > 0]
    centres = np.stack([sample[found == i].mean(axis=0) for i in ids])
    return np.asarray(ids)[np.argmax(vectors @ centres.T, axis=1)]


def first_appearance(found: np.ndarray) -> list[str]:
    """Cluster numbers renamed S1, S2, … in the order they first speak."""
    order = {c: f"S{n}" for n, c in enumerate(dict.fromkeys(found.tolist()), start=1)}
    return [order[c] for c in found.tolist()]


def turns(regions: list[SpeechRegion], spans: list[SpeechRegion], labels: list[str]) -> list[Turn]:
    """Each voiced region cut between neighbouring window centres, labelled, and same-speaker runs joined."""
    centres = np.array([(s.start + s.end) / 2 for s in spans])
    pieces: list[Turn] = []
    for region in regions:
        if not len(centres):
            break
        inside = [n for n, c in enumerate(centres) if region.start <= c <= region.end]
        if not inside:  # a blip too short for a window: the speaker of the nearest window
            inside = [int(np.argmin(np.abs(centres - (region.start + region.end) / 2)))]
        cuts = [region.start] + [float(centres[a] + centres[b]) / 2 for a, b in zip(inside, inside[1:])]
        cuts.append(region.end)
        pieces += [Turn(round(cuts[k], 3), round(cuts[k + 1], 3), labels[n]) for k, n in enumerate(inside)]
    return _joined(pieces)


def _joined(pieces: list[Turn], gap_s: float = 1.0) -> list[Turn]:
    joined: list[Turn] = []
    for piece in pieces:
        if joined and joined[-1].speaker == piece.speaker and piece.start - joined[-1].end <= gap_s:
            joined[-1] = Turn(joined[-1].start, piece.end, piece.speaker)
        elif piece.end > piece.start:
            joined.append(piece)
    return joined


def diarize(audio: AudioSource, encoder: SpeakerEncoder, speakers: int | None = None) -> Diarization:
    """The turns of `audio`: how many speakers `speakers` says, or as many as are found."""
    regions = speech_regions(audio, min_silence_s=0.3, pad_s=0.1)
    spans = windows(regions, duration(audio))
    labels = first_appearance(cluster(encoder.embed(audio, spans), speakers)) if spans else []
    found = turns(regions, spans, labels)
    record = {**encoder.record.to_dict(), "speakers": speakers, "found": len({t.speaker for t in found}),
              "window_s": WINDOW_S, "step_s": STEP_S, "threshold": None if speakers else THRESHOLD}
    return Diarization(found, record)
