"""Random-weight ONNX exports at real model sizes, for bench/ctc.py: speed and memory hold, the text is noise.

- `omnilingual(folder, size)`: Omnilingual ASR CTC, sherpa-onnx's export I/O (`x` waveform in, `logits`
  out, a frame per 320 samples): wav2vec2's 7-layer convolutional front end, a grouped positional
  convolution (kernel 128, 16 groups), pre-norm transformer layers, a 9812-token projection. Sizes (the
  published shapes): 300M = width 1024, 24 layers, 16 heads, FFN 4096; 1B = width 1280, 48 layers,
  16 heads, FFN 5120 (as XLS-R 1B).
- `gigaam(folder, size)`: GigaAM's ONNX I/O (`features` (B, 64, T) log-mel and `feature_lengths` in,
  `log_probs` (B, T/4, vocab) out, a frame per 40 ms): two strided 1-D convolutions (kernel 5,
  stride 2), conformer layers (half-step feed-forward, self-attention, convolution module with GLU,
  depthwise kernel 31 and batch norm, second half-step feed-forward, layer norm), a character
  projection. GigaAM-Multilingual large's layer count and width are not published in what this repo
  can read: width 1024 and 24 layers (16 heads, FFN 4096) give the card's ~600M parameters; the
  220M model is taken as GigaAM v2's shape (width 768, 16 layers, 16 heads, FFN 3072).

Simplifications that cost about what the real ops cost: ReLU for GELU, no rotary position terms,
pointwise convolutions written as MatMuls (so they are quantised with the rest), batch norm as
Mul + Add. Each export is quantised as sherpa-onnx does (`quantize_dynamic`, MatMuls, QUInt8).
Weights stream to one external-data file as they are drawn, so a 1B fp32 graph (about 4 GB) is
never held twice in memory and passes protobuf's 2 GB limit.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OMNI = {"300m": (1024, 24, 16, 4096), "1b": (1280, 48, 16, 5120)}  # width, layers, heads, FFN
VOCAB = 9812
FRONT = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2  # (channels, kernel, stride): 320 samples
# width, layers, heads, FFN, depthwise kernel, characters (+ blank): large (~586M) and base (~220M, GigaAM v2's shape)
GIGAAM = {"600m": (1024, 24, 16, 4096, 31, 256), "220m": (768, 16, 16, 3072, 31, 256)}
MELS = 64


class Graph:
    """A small builder over onnx.helper: named weights streamed to `data`, nodes, each op returning its output."""

    def __init__(self, seed: int, data: Path) -> None:
        self.rng, self.nodes, self.tensors, self.count = np.random.default_rng(seed), [], [], 0
        self.data, self.offset, self.params = data.open("wb"), 0, 0

    def tensor(self, values: np.ndarray) -> str:
        """An initialiser: inline when small, else appended to the external-data file."""
        from onnx import TensorProto, helper, numpy_helper

        name = f"w{len(self.tensors)}"
        if values.nbytes < 4096:
            self.tensors.append(numpy_helper.from_array(values, name))
            return name
        proto = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(values.dtype), dims=values.shape)
        for key, value in (("location", Path(self.data.name).name), ("offset", self.offset),
                           ("length", values.nbytes)):
            entry = proto.external_data.add()
            entry.key, entry.value = key, str(value)
        proto.data_location = TensorProto.EXTERNAL
        self.data.write(values.tobytes())
        self.offset += values.nbytes
        self.params += values.size
        self.tensors.append(proto)
        return name

    def weight(self, *shape: int, scale: float = 0.02) -> str:
        return self.tensor(self.rng.standard_normal(shape, dtype=np.float32) * scale)

    def const(self, values: list[int]) -> str:
        return self.tensor(np.array(values, dtype=np.int64))

    def scalar(self, value: float) -> str:
        return self.tensor(np.array(value, dtype=np.float32))

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        return self.op("Add", self.op("MatMul", x, self.weight(n_in, n_out)), self.weight(n_out))

    def norm(self, x: str, n: int) -> str:
        ones = self.tensor(np.ones(n, dtype=np.float32))
        return self.op("LayerNormalization", x, ones, self.weight(n), axis=-1)

    def swish(self, x: str) -> str:
        return self.op("Mul", x, self.op("Sigmoid", x))

    def transpose(self, x: str) -> str:
        """(B, T, C) <-> (B, C, T)."""
        return self.op("Transpose", x, perm=[0, 2, 1])


def _attention(g: Graph, x: str, width: int, heads: int) -> str:
    """Multi-head self-attention, the scores scaled by the square root of the head width."""
    split = g.const([0, 0, heads, width // heads])
    q, k, v = (g.op("Transpose", g.op("Reshape", g.linear(x, width, width), split), perm=[0, 2, 1, 3])
               for _ in range(3))
    scores = g.op("Softmax", g.op("Div", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                                  g.scalar(math.sqrt(width // heads))), axis=-1)
    merged = g.op("Reshape", g.op("Transpose", g.op("MatMul", scores, v), perm=[0, 2, 1, 3]), g.const([0, 0, width]))
    return g.linear(merged, width, width)


def _save(g: Graph, folder: Path, name: str, inputs: list, output, metadata: dict[str, str]) -> Path:
    """Write the fp32 graph beside its data, quantise its MatMuls to `model.int8.onnx`, drop the fp32."""
    import onnx
    from onnx import helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    g.data.close()
    graph = helper.make_graph(g.nodes, name, inputs, [output], g.tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.save(model, folder / "fp32.onnx")
    del model, graph
    quantize_dynamic(str(folder / "fp32.onnx"), str(folder / "model.int8.onnx"), op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QUInt8)
    for leftover in ("fp32.onnx", "fp32.data"):
        (folder / leftover).unlink()
    return folder


def omnilingual(folder: Path, size: str = "300m", seed: int = 0) -> Path:
    """Write a random Omnilingual CTC export of `size` (model.int8.onnx) and its tokens.txt."""
    from onnx import TensorProto, helper

    from tests.tiny_models import write_tokens

    width, layers, heads, ffn = OMNI[size]
    folder.mkdir(parents=True, exist_ok=True)
    g = Graph(seed, folder / "fp32.data")
    h, channels = g.op("Unsqueeze", "x", g.const([1])), 1
    for out, kernel, stride in FRONT:
        h = g.op("Relu", g.op("Conv", h, g.weight(out, channels, kernel, scale=0.05), strides=[stride]))
        channels = out
    h = g.linear(g.norm(g.transpose(h), channels), channels, width)
    pos = g.op("Conv", g.transpose(h), g.weight(width, width // 16, 128, scale=0.01), group=16, pads=[64, 63])
    h = g.op("Add", h, g.transpose(g.op("Relu", pos)))
    for _ in range(layers):
        h = g.op("Add", h, _attention(g, g.norm(h, width), width, heads))
        h = g.op("Add", h, g.linear(g.op("Relu", g.linear(g.norm(h, width), width, ffn)), ffn, width))
    logits = g.linear(g.norm(h, width), width, VOCAB)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    params = g.params
    _save(g, folder, f"omnilingual_ctc_{size}_random",
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "num_samples"])],
          helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", VOCAB]),
          {"model_type": "omnilingual-asr", "vocab_size": str(VOCAB), "parameters": str(params)})
    write_tokens(folder / "tokens.txt", ["<s>", "<pad>", "</s>", "<unk>", " "] + [f"p{i}" for i in range(VOCAB - 5)])
    return folder


def _conformer_layer(g: Graph, h: str, width: int, heads: int, ffn: int, kernel: int) -> str:
    """One conformer block: ½ FF, attention, convolution module, ½ FF, layer norm; residual around each."""
    def feed_forward(x: str) -> str:
        out = g.linear(g.swish(g.linear(g.norm(x, width), width, ffn)), ffn, width)
        return g.op("Add", x, g.op("Mul", out, g.scalar(0.5)))

    h = feed_forward(h)
    h = g.op("Add", h, _attention(g, g.norm(h, width), width, heads))
    x = g.norm(h, width)
    glu = g.op("Mul", g.linear(x, width, width), g.op("Sigmoid", g.linear(x, width, width)))  # pointwise d -> 2d, GLU
    depth = g.op("Conv", g.transpose(glu), g.weight(width, 1, kernel, scale=0.05), g.weight(width),
                 group=width, pads=[kernel // 2, kernel // 2])
    normed = g.op("Add", g.op("Mul", depth, g.weight(width, 1, scale=1.0)), g.weight(width, 1))  # batch norm
    h = g.op("Add", h, g.linear(g.swish(g.transpose(normed)), width, width))
    return g.norm(feed_forward(h), width)


def gigaam(folder: Path, size: str = "600m", seed: int = 0) -> Path:
    """Write a random GigaAM-Multilingual-shaped export of `size` (model.int8.onnx) and its tokens.txt."""
    from onnx import TensorProto, helper

    from tests.tiny_models import write_tokens

    width, layers, heads, ffn, kernel, vocab = GIGAAM[size]
    folder.mkdir(parents=True, exist_ok=True)
    g = Graph(seed, folder / "fp32.data")
    h, channels = "features", MELS
    for _ in range(2):  # 10 ms mel frames -> 40 ms
        h = g.op("Relu", g.op("Conv", h, g.weight(width, channels, 5, scale=0.05), g.weight(width),
                              strides=[2], pads=[2, 2]))
        channels = width
    h = g.transpose(h)
    for _ in range(layers):
        h = _conformer_layer(g, h, width, heads, ffn, kernel)
    g.nodes.append(helper.make_node("LogSoftmax", [g.linear(h, width, vocab)], ["log_probs"], axis=-1))
    params = g.params
    _save(g, folder, f"gigaam_multilingual_{size}_random",
          [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", MELS, "T"]),
           helper.make_tensor_value_info("feature_lengths", TensorProto.INT64, ["B"])],
          helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["B", "T_out", vocab]),
          {"model_type": "gigaam-ctc", "parameters": str(params)})
    write_tokens(folder / "tokens.txt", [" "] + [f"c{i}" for i in range(vocab - 2)] + ["<blk>"])
    return folder
