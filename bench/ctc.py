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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL_KK = REPO.parent / "shared" / "data" / "real-kk" / "audio"
WIDTH, LAYERS, HEADS, FFN, VOCAB = 1024, 24, 16, 4096, 9812
FRONT = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2  # (channels, kernel, stride): 320 samples


class Graph:
    """A small builder over onnx.helper: named weights and nodes, each op returning its output name."""

    def __init__(self, seed: int) -> None:
        self.rng, self.nodes, self.weights, self.count = np.random.default_rng(seed), [], {}, 0

    def weight(self, *shape: int, scale: float = 0.02) -> str:
        name = f"w{len(self.weights)}"
        self.weights[name] = (self.rng.standard_normal(shape, dtype=np.float32) * scale)
        return name

    def const(self, values: list[int]) -> str:
        name = f"c{len(self.weights)}"
        self.weights[name] = np.array(values, dtype=np.int64)
        return name

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        return self.op("Add", self.op("MatMul", x, self.weight(n_in, n_out)), self.weight(n_out))

    def norm(self, x: str, n: int) -> str:
        scale = self.weight(n)
        self.weights[scale] = np.ones(n, dtype=np.float32)
        return self.op("LayerNormalization", x, scale, self.weight(n), axis=-1)


def _attention(g: Graph, x: str) -> str:
    heads = g.const([0, 0, HEADS, WIDTH // HEADS])
    q, k, v = (g.op("Transpose", g.op("Reshape", g.linear(x, WIDTH, WIDTH), heads), perm=[0, 2, 1, 3])
               for _ in range(3))
    scores = g.op("Softmax", g.op("Div", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                                  _scalar(g, 8.0)), axis=-1)  # sqrt of the head width
    merged = g.op("Reshape", g.op("Transpose", g.op("MatMul", scores, v), perm=[0, 2, 1, 3]), g.const([0, 0, WIDTH]))
    return g.linear(merged, WIDTH, WIDTH)


def _scalar(g: Graph, value: float) -> str:
    name = f"s{len(g.weights)}"
    g.weights[name] = np.array(value, dtype=np.float32)
    return name


def omnilingual_300m(folder: Path, seed: int = 0) -> Path:
    """Write the random 300M export (model.onnx, then model.int8.onnx) and its tokens.txt."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tests.tiny_models import write_tokens

    g = Graph(seed)
    h, channels = g.op("Unsqueeze", "x", g.const([1])), 1
    for out, kernel, stride in FRONT:
        h = g.op("Relu", g.op("Conv", h, g.weight(out, channels, kernel, scale=0.05), strides=[stride]))
        channels = out
    h = g.linear(g.norm(g.op("Transpose", h, perm=[0, 2, 1]), channels), channels, WIDTH)
    pos = g.op("Conv", g.op("Transpose", h, perm=[0, 2, 1]), g.weight(WIDTH, WIDTH // 16, 128, scale=0.01),
               group=16, pads=[64, 63])
    h = g.op("Add", h, g.op("Transpose", g.op("Relu", pos), perm=[0, 2, 1]))
    for _ in range(LAYERS):
        h = g.op("Add", h, _attention(g, g.norm(h, WIDTH)))
        h = g.op("Add", h, g.linear(g.op("Relu", g.linear(g.norm(h, WIDTH), WIDTH, FFN)), FFN, WIDTH))
    logits = g.linear(g.norm(h, WIDTH), WIDTH, VOCAB)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    graph = helper.make_graph(g.nodes, "omnilingual_ctc_300m_random",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "num_samples"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", VOCAB])],
                              [numpy_helper.from_array(w, k) for k, w in g.weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"model_type": "omnilingual-asr", "vocab_size": str(VOCAB)})
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "fp32.onnx")
    del model, graph, g
    quantize_dynamic(str(folder / "fp32.onnx"), str(folder / "model.int8.onnx"), op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QUInt8)
    (folder / "fp32.onnx").unlink()
    write_tokens(folder / "tokens.txt", ["<s>", "<pad>", "</s>", "<unk>", " "] + [f"p{i}" for i in range(VOCAB - 5)])
    return folder


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
