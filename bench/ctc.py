"""Real-time factor and peak memory of the CTC engine at a real model size, beside faster-whisper base.

    .venv/bin/python bench/ctc.py [--seconds 90] [--cache /tmp/ctc-bench] [--threads 1] [--real-kk DIR]

The CTC model is an Omnilingual-ASR-CTC-300M-shaped export with RANDOM weights (wav2vec2 large:
a 7-layer convolutional front end with a 320-sample stride, a grouped positional convolution,
24 pre-norm transformer layers of width 1024, 16 heads, feed-forward 4096, a 9812-token
projection: about 300M parameters), in the sherpa-onnx export's I/O (`x` waveform in, `logits` out),
quantised to int8 MatMuls as that export is (`quantize_dynamic`, QUInt8). Random weights cost what
real ones cost, so speed and memory hold; the text is noise. faster-whisper runs the real base
weights (int8, from the packaged parts). Both transcribe the same audio through the same shared
loop (Silero VAD, chunks), Kazakh forced, greedy; each in a fresh process reporting its own peak
RSS. The audio: the first real Kazakh clips of ../shared/data/real-kk/, joined and cut to --seconds.
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
from bench.ctc_shapes import omnilingual_300m  # noqa: E402  (after the path above)

REAL_KK = REPO.parent / "shared" / "data" / "real-kk" / "audio"


def speech(seconds: float, folder: Path, out: Path) -> Path:
    """The first real Kazakh clips of `folder`, each decoded to 16 kHz mono, joined and cut to `seconds`."""
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
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm[:wanted])
    return out


def worker(engine: str, model: str, wav: str) -> dict:
    from pipeline.asr.core import AsrOptions
    from pipeline.asr.engine import engine_for
    from pipeline.stages.media import load_wav

    audio = load_wav(Path(wav))
    chosen = engine_for(engine)
    loaded, _record = chosen.load(model, chosen.device(None))
    start = time.perf_counter()
    result = chosen.transcribe(loaded, audio, AsrOptions(model=model, language="kk", engine=engine,
                                                         temperatures=(0.0,)))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"engine": engine, "seconds": round(seconds, 2), "rtf": round(seconds / (len(audio) / 16000), 3),
            "segments": len(result.segments), "rss_mib": round(peak)}


def measure(engine: str, model: str, wav: Path, threads: int) -> dict:
    env = {**os.environ, "TESTIMONY_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, __file__, "--worker", engine, model, str(wav)], env=env,
                          capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ctc-bench"))
    parser.add_argument("--threads", type=int, default=1, help="faster-whisper's threads (the CTC engine uses 1)")
    parser.add_argument("--real-kk", type=Path, default=REAL_KK, help="folder of the real Kazakh .flac clips")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    export = args.cache / "omnilingual-300m-random"
    if not (export / "model.int8.onnx").is_file():
        built = time.perf_counter()
        omnilingual_300m(export)
        print(f"built {export} in {time.perf_counter() - built:.0f} s "
              f"({(export / 'model.int8.onnx').stat().st_size / 2**20:.0f} MiB)")
    wav = speech(args.seconds, args.real_kk, args.cache / "real-kk.wav")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.seconds:.0f} s of real Kazakh speech")
    print("| engine | model | threads | wall s | RTF | peak RSS MiB | segments |\n|---|---|---|---|---|---|---|")
    for engine, model, threads in (("ctc", str(export), 1), ("faster-whisper", "base", args.threads)):
        row = measure(engine, model, wav, threads)
        print(f"| {engine} | {Path(model).name} | {threads} | {row['seconds']} | {row['rtf']} | {row['rss_mib']} "
              f"| {row['segments']} |", flush=True)


if __name__ == "__main__":
    main()
