"""Real-time factor and peak memory of CTC engines at real model sizes, beside faster-whisper and openai-whisper base.

    .venv/bin/python bench/ctc.py [--seconds 90] [--cache /tmp/ctc-bench] [--threads 1] [--ctc-threads 1]
                                  [--real-kk DIR]
                                  [--only omni-300m omni-1b gigaam-600m gigaam-220m faster-whisper whisper]

The CTC models are exports with RANDOM weights of the real shapes (bench/ctc_shapes.py): Omnilingual
ASR CTC 300M and 1B (wav2vec2, sherpa-onnx's export I/O, `x` waveform in, `logits` out, 20 ms
frames) and GigaAM-Multilingual large (~600M) and base (~220M) (conformers over 64 log-mel bands,
40 ms frames, GigaAM's ONNX I/O), each quantised to int8 MatMuls as sherpa-onnx's exports are (`quantize_dynamic`,
QUInt8). Random weights cost what real ones cost, so speed and memory hold; the text is noise.
faster-whisper runs the real base weights (int8, from the packaged parts), openai-whisper the real
base checkpoint from the model store. All transcribe the same audio through the same shared loop
(Silero VAD, chunks), Kazakh forced, greedy; each in a fresh process reporting its own peak RSS;
each export is built once, in its own process, under --cache (a rerun reuses it). The audio: the
first real Kazakh clips of ../shared/data/real-kk/, joined (the whole set repeated when shorter) and
cut to --seconds. The timing starts after the model is loaded and the VAD's module imported (a
once-per-process cost every row would otherwise pay inside or outside its timing by accident); each row
prints the load average beside it and its time as a multiple of faster-whisper's in the same pass.
--ctc-threads above 1 is a measurement only: the engine runs on one thread, for byte-identical
output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.ctc_shapes import gigaam, omnilingual  # noqa: E402  (after the path above)

REAL_KK = REPO.parent / "shared" / "data" / "real-kk" / "audio"
# row name -> (engine, cache folder of the random export or the store's model name, how to build it)
ROWS = {
    "omni-300m": ("ctc", "omnilingual-300m-random", lambda folder: omnilingual(folder, "300m")),
    "omni-1b": ("ctc", "omnilingual-1b-random", lambda folder: omnilingual(folder, "1b")),
    "gigaam-600m": ("ctc", "gigaam-600m-random", lambda folder: gigaam(folder, "600m")),
    "gigaam-220m": ("ctc", "gigaam-220m-random", lambda folder: gigaam(folder, "220m")),
    "faster-whisper": ("faster-whisper", "base", None),
    "whisper": ("whisper", "base", None),
}


def speech(seconds: float, folder: Path, out: Path) -> tuple[Path, float]:
    """The first real Kazakh clips of `folder`, each decoded to 16 kHz mono, joined and cut to `seconds`;
    when all of them are shorter (real-kk holds about 222 s), the whole set again from the start, so
    a 10-minute run is 10 minutes of real speech. Returns the file and its distinct seconds."""
    import wave

    clips = sorted(folder.glob("*.flac"), key=lambda p: int(p.stem.split("_")[-1]))
    if not clips:
        sys.exit(f"{folder}: no .flac clips (pass --real-kk PATH/TO/shared/data/real-kk/audio)")
    pcm, wanted = b"", int(seconds * 16000) * 2
    for clip in clips:
        pcm += subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-ac", "1", "-ar", "16000", "-f", "s16le",
                               "-"], check=True, capture_output=True).stdout
        if len(pcm) >= wanted:
            break
    distinct = min(len(pcm), wanted) / 32000
    pcm *= -(-wanted // len(pcm))  # repeated whole: no engine carries text or state from one chunk on
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm[:wanted])
    return out, distinct


def worker(engine: str, model: str, wav: str) -> dict:
    import faster_whisper.vad  # noqa: F401  (the shared VAD's import, once per process: kept out of the timing)

    from pipeline.asr.core import AsrOptions
    from pipeline.asr.engine import engine_for
    from pipeline.stages.media import load_wav
    from pipeline.store import ctc_store

    ctc_store.THREADS = int(os.environ.get("BENCH_CTC_THREADS", "1"))
    audio = load_wav(Path(wav))
    chosen = engine_for(engine)
    loaded, _record = chosen.load(model, chosen.device(None))
    start = time.perf_counter()
    result = chosen.transcribe(loaded, audio, AsrOptions(model=model, language="kk", engine=engine,
                                                         temperatures=(0.0,)))
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    return {"engine": engine, "seconds": round(seconds, 2), "rtf": round(seconds / (len(audio) / 16000), 3),
            "segments": len(result.segments), "rss_mib": round(peak)}


def measure(engine: str, model: str, wav: Path, threads: int) -> dict:
    env = {**os.environ, "TESTIMONY_THREADS": str(threads), "BENCH_CTC_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, __file__, "--worker", engine, model, str(wav)], env=env,
                          capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(row: str, folder: Path) -> dict:
    """Build one export (in the --build process): its time, the builder's peak RSS, file size, parameters."""
    import onnx

    start = time.perf_counter()
    ROWS[row][2](folder)
    model = folder / "model.int8.onnx"
    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    return {"seconds": round(time.perf_counter() - start), "rss_mib": round(_peak_mib()),
            "mib": round(model.stat().st_size / 2**20), "parameters": int(props.get("parameters", 0))}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def export(row: str, cache: Path) -> Path:
    """The cached export of `row`, built first in a fresh process when missing (so this one stays small)."""
    folder = cache / ROWS[row][1]
    if not (folder / "model.int8.onnx").is_file():
        done = subprocess.run([sys.executable, __file__, "--build", row, str(folder)], capture_output=True,
                              text=True, check=True, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"built {folder} in {facts['seconds']} s ({facts['mib']} MiB int8, {facts['parameters'] / 1e6:.0f}M "
              f"parameters in the streamed weights, builder peak RSS {facts['rss_mib']} MiB)", flush=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ctc-bench"))
    parser.add_argument("--threads", type=int, default=1, help="faster-whisper's and openai-whisper's threads")
    parser.add_argument("--ctc-threads", type=int, default=1,
                        help="the CTC engine's onnxruntime threads (a measurement: the engine itself uses 1)")
    parser.add_argument("--real-kk", type=Path, default=REAL_KK, help="folder of the real Kazakh .flac clips")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS), help="the rows to measure")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    if args.build:
        print(json.dumps(build(args.build[0], Path(args.build[1]))))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    models = {row: str(export(row, args.cache)) if ROWS[row][2] else ROWS[row][1] for row in args.only}
    wav, distinct = speech(args.seconds, args.real_kk, args.cache / "real-kk.wav")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.seconds:.0f} s of real Kazakh speech ({distinct:.0f} s distinct, repeated to length)")
    print("| engine | model | threads | load 1 min | wall s | RTF | peak RSS MiB | segments |\n"
          "|---|---|---|---|---|---|---|---|")
    rows = {}
    for row in args.only:
        engine, threads = ROWS[row][0], args.ctc_threads if ROWS[row][0] == "ctc" else args.threads
        load = os.getloadavg()[0]
        rows[row] = got = measure(engine, models[row], wav, threads)
        print(f"| {engine} | {Path(models[row]).name} | {threads} | {load:.1f} | {got['seconds']} | {got['rtf']} "
              f"| {got['rss_mib']} | {got['segments']} |", flush=True)
    if "faster-whisper" in rows:
        base = rows["faster-whisper"]["seconds"]
        print("time / faster-whisper's in this pass: " + ", ".join(
            f"{row} {got['seconds'] / base:.2f}" for row, got in rows.items()))


if __name__ == "__main__":
    main()
