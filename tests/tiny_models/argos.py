"""A tiny, random-weight Argos Translate package built at test time.

Why: tests must exercise the real Argos package layout (zip -> metadata.json,
CTranslate2 `model/`, `sentencepiece.model`) and the real CTranslate2 decoder
without shipping or downloading any weights. The output is gibberish; only the
plumbing is under test.
"""

from __future__ import annotations

import json
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import transformer_spec

from ..media_factory import udhr

# Language code -> column of the UDHR dev file.
COLUMNS = {"en": "en", "kk": "kk", "ug": "ug-Arab", "ru": "ru"}
NAMES = {"en": "English", "kk": "Kazakh", "ug": "Uyghur", "ru": "Russian"}

D_MODEL = 32
FFN = 64
HEADS = 2
LAYERS = 1


def udhr_column(code: str) -> list[str]:
    """The UDHR dev lines for one language code (`ug` means Arabic-script Uyghur)."""
    return udhr(COLUMNS.get(code, code))


def _train_sentencepiece(lines: list[str], prefix: Path, vocab_size: int) -> list[str]:
    """Train a shared SentencePiece model and return its pieces in id order."""
    corpus = prefix.with_suffix(".txt")
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # 20 lines may not support the full size
        character_coverage=1.0,
        model_type="unigram",
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(prefix.with_suffix(".model")))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _random_transformer(vocab: list[str], seed: int, eos_bias: float) -> transformer_spec.TransformerSpec:
    """A 1-layer pre-norm Transformer with small random weights over `vocab`.

    `eos_bias` nudges the output layer towards `</s>` so most outputs end on their
    own (fast tests); the rest run into the translator's length cap.
    """
    rng = np.random.default_rng(seed)
    d, f, v = D_MODEL, FFN, len(vocab)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    def norm(spec) -> None:
        spec.gamma = np.ones(d, dtype=np.float32)
        spec.beta = np.zeros(d, dtype=np.float32)

    def linear(spec, out_dim: int, in_dim: int) -> None:
        spec.weight = w(out_dim, in_dim)
        spec.bias = w(out_dim)

    def ffn(spec) -> None:
        norm(spec.layer_norm)
        linear(spec.linear_0, f, d)
        linear(spec.linear_1, d, f)

    spec = transformer_spec.TransformerSpec.from_config(LAYERS, HEADS)
    spec.encoder.embeddings[0].weight = w(v, d)
    norm(spec.encoder.layer_norm)
    for layer in spec.encoder.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)  # fused q, k, v
        linear(layer.self_attention.linear[1], d, d)
        ffn(layer.ffn)

    spec.decoder.embeddings.weight = w(v, d)
    norm(spec.decoder.layer_norm)
    linear(spec.decoder.projection, v, d)
    spec.decoder.projection.bias[vocab.index("</s>")] += eos_bias
    for layer in spec.decoder.layer:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)
        linear(layer.self_attention.linear[1], d, d)
        norm(layer.attention.layer_norm)
        linear(layer.attention.linear[0], d, d)  # query
        linear(layer.attention.linear[1], 2 * d, d)  # fused k, v from the encoder
        linear(layer.attention.linear[2], d, d)
        ffn(layer.ffn)

    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    return spec


def build_tiny_argos_package(
    workdir: Path,
    from_code: str = "kk",
    to_code: str = "en",
    *,
    vocab_size: int = 300,
    eos_bias: float = 0.5,
) -> Path:
    """Build `translate-<from>_<to>.argosmodel` in `workdir` and return its path.

    The zip holds one top-level directory, as Argos packages do, so installing
    it (extracting into the package store) yields `<store>/<dirname>/metadata.json`.
    """
    workdir = Path(workdir)
    name = f"translate-{from_code}_{to_code}-0_1"
    build = workdir / f"build-{from_code}_{to_code}"
    if build.exists():
        shutil.rmtree(build)
    pkg_dir = build / name
    pkg_dir.mkdir(parents=True)

    lines = [t for t in udhr_column(from_code) + udhr_column(to_code) if t.strip()]
    vocab = _train_sentencepiece(lines, build / "sp", vocab_size)
    shutil.copy(build / "sp.model", pkg_dir / "sentencepiece.model")

    seed = zlib.crc32(f"{from_code}->{to_code}".encode())
    spec = _random_transformer(vocab, seed, eos_bias)
    spec.validate()
    (pkg_dir / "model").mkdir()
    spec.save(str(pkg_dir / "model"))

    metadata = {
        "package_version": "0.1",
        "argos_version": "1.11",
        "from_code": from_code,
        "from_name": NAMES.get(from_code, from_code),
        "to_code": to_code,
        "to_name": NAMES.get(to_code, to_code),
        "type": "translate",
        "links": [],
    }
    (pkg_dir / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    (pkg_dir / "README.md").write_text("Random weights for tests; output is gibberish.\n")

    archive = workdir / f"translate-{from_code}_{to_code}.argosmodel"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(pkg_dir.rglob("*")):
            zf.write(path, path.relative_to(build).as_posix())
    shutil.rmtree(build)
    return archive
