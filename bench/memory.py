"""Peak memory of one whole `testimony run` as the recording grows: 10 minutes, 1 hour, 3 hours.

    .venv/bin/python bench/memory.py [--hours 0.1667 1 3] [--every 300] [--engine whisper]

Each length is a video built at run time: a real LibriVox answer every `--every` seconds over quiet
room noise, H.264 + AAC. Each run is a fresh process (`--worker`) that reports its own peak RSS
(ffmpeg, a child, streams to disk and is not counted). For scale, the same process also reports what the whole
recording costs as one float32 array plus its log-mel spectrogram, which is what decoding needed before chunking.
Results: bench/results-memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def worker(kind: str, video: str, archive: str, engine: str) -> dict:
    if kind == "array":  # the old way: the whole WAV and its mel in memory at once
        from whisper.audio import log_mel_spectrogram

        from pipeline.stages.media import extract_audio, load_wav, probe

        audio = load_wav(extract_audio(probe(Path(video)), Path(archive) / "a.wav").wav_path)
        mel = log_mel_spectrogram(audio)
        return {"rss_mib": _mib(resource.RUSAGE_SELF), "array_mib": audio.nbytes / 2**20,
                "mel_mib": mel.numel() * mel.element_size() / 2**20}
    from pipeline.cli.main import main

    start = time.perf_counter()
    code = main(["run", video, "--out", archive, "--asr-model", "base", "--engine", engine, "--no-translate"])
    return {"code": code, "seconds": time.perf_counter() - start, "rss_mib": _mib(resource.RUSAGE_SELF)}


def build_video(seconds: float, every: float, out: Path) -> Path:
    """Quiet noise for `seconds`, with a LibriVox clip every `every` seconds, as a small H.264 + AAC video."""
    from pipeline.evaluation.devset import librivox

    clips = [wav for _, wav, _ in sorted(librivox(), key=lambda c: c[1])]
    pattern = out.with_suffix(".pattern.wav")
    # One `every`-second block: a clip after 5 s, then room noise; the block is looped to length.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clips[0]), "-f", "lavfi",
                    "-i", f"anoisesrc=color=pink:amplitude=0.003:sample_rate=16000:duration={every}",
                    "-filter_complex", "[0:a]aresample=16000,adelay=5000:all=1[s];"
                    "[s][1:a]amix=inputs=2:duration=longest:normalize=0[a]",
                    "-map", "[a]", "-ac", "1", "-ar", "16000", "-t", str(every), str(pattern)],
                   check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=64x48:r=1",
                    "-stream_loop", "-1", "-i", str(pattern), "-map", "0:v", "-map", "1:a", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "48k", str(out)], check=True)
    pattern.unlink()
    return out


def measure(kind: str, video: Path, engine: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="testimony-mem-") as tmp:
        result = subprocess.run([sys.executable, __file__, "--worker", kind, str(video), tmp, engine],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, nargs="+", default=[10 / 60, 1.0, 3.0])
    parser.add_argument("--every", type=float, default=300.0, help="seconds between spoken answers")
    parser.add_argument("--engine", default="whisper", choices=["whisper", "faster-whisper"])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results-memory.md")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "VIDEO", "ARCHIVE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="testimony-mem-videos-") as tmp:
        for hours in args.hours:
            seconds = hours * 3600
            video = build_video(seconds, args.every, Path(tmp) / f"{seconds:.0f}s.mp4")
            run = measure("run", video, args.engine)
            array = measure("array", video, args.engine)
            rows.append((seconds, video.stat().st_size / 2**20, run, array))
            print(f"{seconds / 60:.0f} min: run peak {run['rss_mib']:.0f} MiB in {run['seconds']:.0f} s; "
                  f"whole array + mel {array['rss_mib']:.0f} MiB",
                  flush=True)
            video.unlink()

    lines = [
        "# Peak memory by recording length",
        "",
        f"`.venv/bin/python bench/memory.py --hours {' '.join(f'{h:g}' for h in args.hours)} --every {args.every:g} "
        f"--engine {args.engine}`, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end. Model: base, `--no-translate`.",
        "",
        f"Audio: room noise with a real LibriVox answer every {args.every:g} s. The run's peak is the whole "
        "`testimony run` process (hash, extract, VAD, language ID, decoding, bundle), model included.",
        "The last two columns are what the recording costs held whole, as decoding did before it was chunked.",
        "",
        "| audio | video file | run peak RSS | run time | whole float32 array | its mel | array + mel process peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for seconds, size, run, array in rows:
        lines.append(f"| {seconds / 60:.0f} min | {size:.0f} MiB | {run['rss_mib']:.0f} MiB | {run['seconds']:.0f} s | "
                     f"{array['array_mib']:.0f} MiB | {array['mel_mib']:.0f} MiB | "
                     f"{array['rss_mib']:.0f} MiB |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
