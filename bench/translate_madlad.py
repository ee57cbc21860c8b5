"""Sentences per second of MADLAD-400 3B beside NLLB-200 1.3B through CTranslate2 int8 on this CPU, and what
keeping a glossary spelling costs.

    .venv/bin/python bench/translate_madlad.py [--layers 2 4] [--sentences 16] [--length 32] [--threads 1]

Neither model's real weights can be fetched here, so both are built with RANDOM weights at their real
width and vocabulary (MADLAD-400 3B: T5 v1.1, d_model 1024, 16 heads of 128, gated-GELU FFN 8192,
256,000 tokens, untied output layer, 32 + 32 layers; NLLB-200 1.3B: M2M100, d_model 1024, 16 heads,
FFN 8192, 256,206 tokens, 24 + 24 layers) but at fewer layers (`--layers`, encoder = decoder), converted
with CTranslate2's own converter to int8 as the published conversions are. A 3B model in float32 before
conversion (12 GB) does not fit beside the other work on this machine. The time of a batch is then
fitted as a + b x layers over the depths measured and read at the real depths (32 and 24): the layers'
cost is linear in depth, the embedding and output layer are the same at any depth.

Random weights never end a sentence, so both models decode exactly `--length` tokens from `--length`
source tokens (min = max decoding length), beam 4 as the route does, the sentences in one batch (the
route translates up to 32 segments a call). Same tokens, same lengths: only the models differ.

The glossary part runs the route itself (`translate_keeping`) with the tiny random MADLAD of the tests
on UDHR Kazakh lines with a name in half of them, with and without `Тұрсын = Tursun`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHAPES = {
    "MADLAD-400 3B": {"depth": 32, "vocab": 256000},
    "NLLB-200 1.3B": {"depth": 24, "vocab": 256206},
}


def _madlad(folder: Path, layers: int) -> Path:
    """A random T5 v1.1 of MADLAD-3B's width with `layers` + `layers` layers, as a Hugging Face folder."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    from tests.tiny_models.madlad import _train_spm

    hf = folder / "hf"
    hf.mkdir(parents=True)
    _train_spm(hf)
    config = T5Config(vocab_size=SHAPES["MADLAD-400 3B"]["vocab"], d_model=1024, d_kv=128, d_ff=8192,
                      num_layers=layers, num_decoder_layers=layers, num_heads=16, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(hf)
    T5Tokenizer.from_pretrained(str(hf), extra_ids=0).save_pretrained(hf)
    return hf


def _nllb(folder: Path, layers: int) -> Path:
    """A random M2M100 of NLLB-1.3B's width with `layers` + `layers` layers and the tiny NLLB tokenizer."""
    import torch
    from tests.tiny_mt import build_m2m
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    hf = build_m2m(folder / "tok", "nllb")
    config = M2M100Config(vocab_size=SHAPES["NLLB-200 1.3B"]["vocab"], d_model=1024, encoder_layers=layers,
                          decoder_layers=layers, encoder_attention_heads=16, decoder_attention_heads=16,
                          encoder_ffn_dim=8192, decoder_ffn_dim=8192, scale_embedding=True, pad_token_id=1,
                          bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, activation_function="relu")
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(config).save_pretrained(hf)
    return hf


def _convert(hf: Path, out: Path) -> Path:
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf)).convert(str(out), quantization="int8", force=True)
    shutil.rmtree(hf)
    return out


def _batch_seconds(model: Path, sentences: int, length: int, threads: int, repeats: int = 3) -> float:
    """Best of `repeats` wall times of one beam-4 batch, `length` tokens in and out per sentence."""
    import ctranslate2

    translator = ctranslate2.Translator(str(model), device="cpu", compute_type="int8", intra_threads=threads)
    vocab = json.loads((model / "shared_vocabulary.json").read_text(encoding="utf-8"))
    rng = np.random.default_rng(0)
    words = [w for w in vocab[4:20000] if not w.startswith("<") and not w.startswith("__")]
    source = [[words[i] for i in rng.integers(0, len(words), length)] + ["</s>"] for _ in range(sentences)]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        translator.translate_batch(source, beam_size=4, max_batch_size=32, min_decoding_length=length,
                                   max_decoding_length=length)
        best = min(best, time.perf_counter() - started)
    return best


def models(layers: list[int], sentences: int, length: int, threads: int) -> None:
    print(f"| model | layers (enc = dec) | int8 model.bin MB | s per batch of {sentences} | sentences/s |")
    print("|---|---|---|---|---|")
    for name, build in (("MADLAD-400 3B", _madlad), ("NLLB-200 1.3B", _nllb)):
        times = []
        for depth in layers:
            with tempfile.TemporaryDirectory(prefix="bench-mt-") as tmp:
                out = _convert(build(Path(tmp), depth), Path(tmp) / "ct2")
                seconds = _batch_seconds(out, sentences, length, threads)
                size = (out / "model.bin").stat().st_size / 1e6
            times.append(seconds)
            print(f"| {name} shape | {depth} | {size:.0f} | {seconds:.2f} | {sentences / seconds:.2f} |", flush=True)
        slope, intercept = np.polyfit(layers, times, 1)
        real = SHAPES[name]["depth"]
        predicted = intercept + slope * real
        print(f"| {name}, read at its real depth | {real} (fitted) | | {predicted:.2f} | "
              f"{sentences / predicted:.2f} |", flush=True)


def spelling_cost() -> None:
    """The route with and without a glossary spelling, on the tiny MADLAD (what steering adds)."""
    os.environ["TESTIMONY_MODELS"] = tempfile.mkdtemp(prefix="bench-spell-")
    from tests.tiny_argos import udhr_column

    from pipeline import config
    from pipeline.stages.translate import translate_keeping
    from pipeline.store.hf_to_argos import import_translation_model
    from tests.tiny_models.madlad import madlad_ct2

    import_translation_model(madlad_ct2(config.argos_dir().parent / "madlad"), from_codes=["kk"])
    lines = udhr_column("kk")[:20]
    texts = [f"Тұрсын {line}" if n % 2 == 0 else line for n, line in enumerate(lines)]
    rows = []
    for label, english in (("no spelling", None), ("Тұрсын = Tursun", {"Тұрсын": "Tursun"})):
        translate_keeping(texts, "kk", english=english)  # load once
        started = time.perf_counter()
        out, notes = translate_keeping(texts, "kk", english=english)
        seconds = time.perf_counter() - started
        spelled = sum("Tursun" in t for t, line in zip(out, texts) if line.startswith("Тұрсын"))
        rows.append((label, seconds, spelled, sum(1 for n in notes for note in n if note["how"] == "steered")))
    print("\n| tiny MADLAD route, 20 UDHR kk lines (10 say Тұрсын) | s | sentences/s | Tursun in the English "
          "| steered |")
    print("|---|---|---|---|---|")
    for label, seconds, spelled, steered in rows:
        print(f"| {label} | {seconds:.3f} | {len(texts) / seconds:.1f} | {spelled} of 10 | {steered} |")
    shutil.rmtree(os.environ["TESTIMONY_MODELS"], ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--sentences", type=int, default=16)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-models", action="store_true", help="only the glossary spelling cost")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {args.threads} thread(s)\n")
    if not args.skip_models:
        models(args.layers, args.sentences, args.length, args.threads)
    spelling_cost()


if __name__ == "__main__":
    main()
