"""Random-weight ONNX exports at real model sizes, for bench/ctc.py: speed and memory hold, the text is noise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
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
