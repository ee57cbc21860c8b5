"""Adaptation costs and the synthetic before/after (issue 22, measured items 1 and 3).

`cost`: time per epoch and peak memory of `pipeline.adapt.train` (decoder fine-tune, encoder frozen)
for a Whisper of tiny's shape (random weights: the cost is the shape's) and for base (the packaged
real weights), on espeak-ng Kazakh UDHR lines; beside it, what one segment's encoder costs forward only
(paid once, then cached) and forward + backward (what a full or encoder-LoRA fine-tune pays every
epoch): the figures behind the choice of a decoder fine-tune.

`loop`: a small archive of espeak-ng Kazakh UDHR articles, checked to the reference text, adapted from
base with `pipeline.adapt.run.adapt`: held-out WER/CER before and after, on articles it never saw.

    .venv/bin/python bench/adapt.py cost --model tiny --segments 8
    .venv/bin/python bench/adapt.py cost --model base --segments 8
    .venv/bin/python bench/adapt.py loop --recordings 3 --per-recording 1 --epochs 3

`realkk`: the loop on `../shared/data/real-kk/` (31 clips of spontaneous Kazakh with human
transcripts): each clip is one recording of an archive, drafted by Whisper base (`--language kk`,
greedy); a reviewer's merge makes a clip's draft one segment where base cut it in several (the human
transcript has no times inside a clip, so it can only be placed on one segment); the human transcript
(normalised written form) comes back through `review import` as an SRT, checking it; then `adapt`
from base, split by recording (clip), seeded: held-out WER/CER before and after.

    nice .venv/bin/python bench/adapt.py realkk --epochs 5 --keep /tmp/realkk
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pipeline.adapt.pairs import Pair  # noqa: E402
from pipeline.adapt.train import Progress, Settings, features, train  # noqa: E402
from pipeline.evaluation.devset import speak, udhr  # noqa: E402
from pipeline.stages.media import extract_audio, load_wav, probe  # noqa: E402


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _speech(folder: Path, count: int) -> list[tuple[str, Path]]:
    rows = sorted(udhr(), key=lambda r: len(r["kk"]))[:count]  # the shortest: scoring base is slow on CPU
    return [(r["kk"], speak(r["kk"], "kk", folder / f"{i}.wav")) for i, r in enumerate(rows)]


def _checkpoint(model: str, folder: Path) -> Path:
    import whisper
    from whisper.model import ModelDimensions

    if model == "base":
        from pipeline.store.whisper_store import find_official

        return find_official("base").path
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                           n_vocab=51865, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
    torch.manual_seed(0)
    path = folder / "tiny-shape.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": whisper.model.Whisper(dims).state_dict()}, path)
    return path


class Clock(Progress):
    """Progress that also keeps when each epoch's last step ended."""

    def __init__(self, total: int) -> None:
        super().__init__(total, write=lambda line: None)
        self.ends: dict[int, float] = {}

    def step(self, epoch: int, epochs: int, loss: float) -> None:
        super().step(epoch, epochs, loss)
        self.ends[epoch] = time.monotonic()


def _encoder_costs(checkpoint: Path, pair: Pair) -> tuple[float, float]:
    """(seconds forward without grad, seconds forward + backward) for one segment, one thread."""
    from pipeline.store.ct2_to_openai import load_converted

    torch.set_num_threads(1)
    model = load_converted(checkpoint)
    started = time.monotonic()
    features(model, [pair])
    forward = time.monotonic() - started
    started = time.monotonic()
    from whisper.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim

    mel = log_mel_spectrogram(pad_or_trim(torch.from_numpy(pair.audio), N_SAMPLES), model.dims.n_mels)
    model.encoder(mel[None]).float().pow(2).mean().backward()
    return forward, time.monotonic() - started


def cost(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = []
        for i, (text, wav) in enumerate(_speech(folder, args.segments)):
            audio = load_wav(extract_audio(probe(wav), folder / f"{i}-16k.wav").wav_path)
            pairs.append(Pair("bench", i, 0.0, len(audio) / 16000, text, audio))
        checkpoint = _checkpoint(args.model, folder)
        seconds = sum(p.end - p.start for p in pairs)
        clock = Clock(2 * -(-len(pairs) // 4))
        started = time.monotonic()
        train(checkpoint, pairs, Settings("kk", epochs=2), folder / "run", clock)
        setup_and_first = clock.ends[1] - started
        second = clock.ends[2] - clock.ends[1]
        forward, both = _encoder_costs(checkpoint, pairs[0])
    print(f"model {args.model}: {len(pairs)} segments, {seconds:.1f} s of speech, batch 4, 1 thread, torch "
          f"{torch.__version__}")
    print(f"  load + encoder features + epoch 1: {setup_and_first:.1f} s; epoch 2 (decoder only): {second:.1f} s")
    print(f"  one segment's encoder: forward {forward:.2f} s (once per run), forward+backward {both:.2f} s "
          f"(every epoch, for a full or encoder-LoRA fine-tune)")
    print(f"  peak memory (ru_maxrss): {_peak_mib():.0f} MiB")


def _publish_checked(archive: Path, audio: Path, spans: list[tuple[float, float, str]]) -> None:
    """Keep the original, publish a draft, save the reference text as one checked revision."""
    from pipeline.archive import catalog, originals
    from pipeline.archive.bundle import find_bundle
    from pipeline.review import revisions
    from pipeline.review.save import save_revision
    from pipeline.run import process
    from pipeline.transcript import Segment, Source, Transcript

    sha = hashlib.sha256(audio.read_bytes()).hexdigest()
    originals.preserve(audio, archive, sha)
    draft = [Segment(i, a, b, "-", english_source="machine") for i, (a, b, _) in enumerate(spans)]
    process.publish_transcript(archive, Transcript(Source(audio.name, sha, audio.stat().st_size, spans[-1][1],
                                                          {"index": 0}), "kk", "kk", 0.9, {"asr": {"name": "base"}},
                                                   draft, created="2026-12-01T00:00:00+00:00"))
    bundle = find_bundle(archive, sha)
    catalog.index_bundle(archive, bundle)
    newest = revisions.newest(bundle)
    fixed = [{**s, "text": spans[s["id"]][2], "checked": True} for s in newest.segments]
    save_revision(archive, sha, base=newest.sha256, author="bench", segments=fixed)


def build(folder: Path, recordings: int, per_recording: int) -> Path:
    """An archive of `recordings` files of `per_recording` consecutive UDHR articles each, all checked."""
    import subprocess

    from pipeline.stages.media import ffmpeg_binary, wav_duration

    archive = folder / "archive"
    lines = _speech(folder, recordings * per_recording)
    for r in range(recordings):
        chunk = lines[r * per_recording:(r + 1) * per_recording]
        out = folder / f"witness {r}.wav"
        inputs = [arg for _, wav in chunk for arg in ("-i", str(wav))]
        graph = "".join(f"[{i}:a]" for i in range(len(chunk))) + f"concat=n={len(chunk)}:v=0:a=1"
        subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *inputs, "-filter_complex",
                        graph, str(out)], check=True)
        spans, at = [], 0.0
        for text, wav in chunk:
            spans.append((at, at + wav_duration(wav), text))
            at += wav_duration(wav)
        _publish_checked(archive, out, spans)
    return archive


def loop(args: argparse.Namespace) -> None:
    from pipeline.adapt.run import adapt

    with tempfile.TemporaryDirectory() as tmp:
        archive = build(Path(tmp), args.recordings, args.per_recording)
        print(f"archive built: {args.recordings} recordings of {args.per_recording} articles", file=sys.stderr)
        started = time.monotonic()
        clock = Clock(0)
        outcome = adapt(archive, "kk", model="base", progress=clock, settings=Settings("kk", epochs=args.epochs, seed=0,
                                                                       learning_rate=args.learning_rate,
                                                                       held_out=args.held_out),
                        say=lambda line: print(line, file=sys.stderr))
        took = time.monotonic() - started
        rec = outcome.record
        print(f"base -> {outcome.name}: learned from {len(rec['learned_from'])} recording(s), held out "
              f"{len(rec['held_out'])} ({rec['after']['segments']} segments, {rec['after']['words']} words)")
        print(f"  held-out WER {rec['before']['wer']} -> {rec['after']['wer']}, CER {rec['before']['cer']} -> "
              f"{rec['after']['cer']}; routed: {rec['routed']}; losses {rec['losses']}")
        ends = sorted(clock.ends.items())
        per_epoch = [round(b - a, 1) for (_, a), (_, b) in zip(ends, ends[1:])]
        print(f"  epochs after the first (decoder only): {per_epoch} s")
        print(f"  {took:.0f} s in all; weights SHA-256 {rec['sha256'][:16]}; peak memory {_peak_mib():.0f} MiB")
        assert hashlib.sha256(outcome.path.read_bytes()).hexdigest() == rec["sha256"]


def _draft(archive: Path, clip: dict) -> Path:
    """Base's draft of one clip through the real run (greedy, no translation, no speakers)."""
    from pipeline.run.process import RunOptions, process_video

    options = RunOptions.from_flat(language="kk", asr_model="base", translate_to_english=False, diarize=False,
                                   word_timestamps=False, temperature_fallback=False)
    return Path(process_video(clip["audio"], archive, options).bundle)


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3600000:02d}:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def _check_clip(archive: Path, bundle: Path, text: str, folder: Path) -> str:
    """The human transcript brought in through `review import`; a draft in several segments is first merged
    into one by the reviewer (saved as its own revision). Returns what was done, for the report."""
    from pipeline.review import revisions
    from pipeline.review.imports import import_file
    from pipeline.review.save import save_revision
    from pipeline.transcript import read_json

    sha = read_json(bundle / "transcript.json")["source"]["sha256"]
    newest = revisions.newest(bundle)
    segments = newest.segments
    if not segments:
        return "no draft segment: left out (nothing to place the transcript on)"
    done = "one segment"
    if len(segments) > 1:
        merged = {**segments[0], "end": segments[-1]["end"], "text": " ".join(s["text"] for s in segments)}
        save_revision(archive, sha, base=newest.sha256, author="reviewer", segments=[merged])
        segments, done = revisions.newest(bundle).segments, f"{len(newest.segments)} segments merged into one"
    srt = folder / f"{sha[:12]}.srt"
    srt.write_text(f"1\n{_srt_time(segments[0]['start'])} --> {_srt_time(segments[0]['end'])}\n{text}\n",
                   encoding="utf-8")
    import_file(archive, sha, srt, "reviewer")
    return done


def realkk(args: argparse.Namespace) -> None:
    import json
    from collections import Counter

    from pipeline.adapt.run import adapt
    from pipeline.evaluation.devset import real_kk
    from pipeline.evaluation.evaluate import score_text
    from pipeline.review import accounts

    folder = Path(args.keep or tempfile.mkdtemp(prefix="realkk-"))
    archive = folder / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    if accounts.get(archive, "reviewer") is None:  # a rerun on a kept folder takes up where it stopped
        accounts.add(archive, "reviewer", "reviewer", ("kk",), password="a long bench password", must_change=False)
    manifest = real_kk(folder / "manifest", Path(args.data))
    clips = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    started, words, edits, how = time.monotonic(), 0, 0, Counter()
    for clip in clips:
        bundle = _draft(archive, clip)
        draft = " ".join(s["text"] for s in json.loads((bundle / "transcript.json").read_text())["segments"])
        scores = score_text(clip["reference"], draft, "kk")
        words, edits = words + scores["ref_words"], edits + scores["word_edits"]
        how[_check_clip(archive, bundle, clip["reference"], folder)] += 1
        print(f"{clip['id']}: draft WER {scores['wer']}", file=sys.stderr)
    drafting = time.monotonic() - started
    print(f"real-kk: {len(clips)} clips drafted by base in {drafting:.0f} s; draft WER over all clips "
          f"{edits / words:.4f}; placing the human transcripts: {dict(how)}")
    started, clock = time.monotonic(), Clock(0)
    outcome = adapt(archive, "kk", model="base", progress=clock,
                    settings=Settings("kk", epochs=args.epochs, seed=args.seed, held_out=args.held_out),
                    say=lambda line: print(line, file=sys.stderr))
    rec = outcome.record
    print(f"base -> {outcome.name}: learned from {len(rec['learned_from'])} clip(s), held out {len(rec['held_out'])} "
          f"({rec['after']['segments']} segments, {rec['after']['words']} words), seed {args.seed}, "
          f"{args.epochs} epochs")
    print(f"  held-out WER {rec['before']['wer']} -> {rec['after']['wer']}, CER {rec['before']['cer']} -> "
          f"{rec['after']['cer']}; routed: {rec['routed']}; losses {rec['losses']}")
    ends = sorted(clock.ends.items())
    print(f"  epochs after the first (decoder only): {[round(b - a, 1) for (_, a), (_, b) in zip(ends, ends[1:])]} s")
    print(f"  adapt {time.monotonic() - started:.0f} s; peak memory {_peak_mib():.0f} MiB; archive {archive}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("cost")
    c.add_argument("--model", choices=["tiny", "base"], default="tiny")
    c.add_argument("--segments", type=int, default=8)
    lp = verbs.add_parser("loop")
    lp.add_argument("--recordings", type=int, default=5)
    lp.add_argument("--per-recording", type=int, default=3)
    lp.add_argument("--epochs", type=int, default=3)
    lp.add_argument("--learning-rate", type=float, default=1e-5)
    lp.add_argument("--held-out", type=float, default=0.2, help="fraction of recordings held out (at least one)")
    rk = verbs.add_parser("realkk")
    rk.add_argument("--epochs", type=int, default=5)
    rk.add_argument("--seed", type=int, default=0)
    rk.add_argument("--held-out", type=float, default=0.25)
    rk.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" /
                                          "real-kk"), help="the real-kk folder (metadata.csv and audio/)")
    rk.add_argument("--keep", help="build the archive in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    {"cost": cost, "loop": loop, "realkk": realkk}[args.verb](args)


if __name__ == "__main__":
    main()
