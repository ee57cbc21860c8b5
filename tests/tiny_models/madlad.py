"""A tiny random MADLAD-400 model in the CTranslate2 form its conversions are published in.

MADLAD-400 is a T5 (v1.1: gated-GELU, untied output layer) whose source starts with the target
language's token (`<2en>`), with one SentencePiece model (pad 0, `</s>` 1, `<unk>` 2, the `<2xx>`
tokens user-defined pieces). The published CTranslate2 conversions are a folder with `model.bin`,
`config.json`, `shared_vocabulary.json` and the SentencePiece model `spiece.model` (e.g.
zenoverflow/madlad400-3b-mt-int8-float32 on the hub); this builds the same from a
tiny `T5ForConditionalGeneration` (random weights from the seed) and a SentencePiece model trained
here on UDHR lines, converted with CTranslate2's own converter. Nothing binary is committed, and the
same seed gives the same bytes.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm

LANGUAGE_TOKENS = ["<2en>", "<2kk>", "<2ug>", "<2ru>"]
D_MODEL, D_KV, FFN, HEADS = 32, 16, 64, 2
SIGMA = 0.5  # weights large enough that the output depends on the input
STEADY = 4.0  # the first feature of every embedding (see `_t5`)
EOS_WEIGHT = 60.0  # chosen so that some outputs end on their own, others run to the length cap


def _udhr_lines() -> list[str]:
    from .argos import udhr_column

    return udhr_column("kk") + udhr_column("ug") + udhr_column("en") + udhr_column("ru")


def _train_spm(folder: Path) -> spm.SentencePieceProcessor:
    """MADLAD's layout of special ids, trained on a few UDHR lines with one thread (deterministic)."""
    model = io.BytesIO()  # trained from an iterator into memory: no file path is recorded in the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_udhr_lines()), model_writer=model, vocab_size=400, hard_vocab_limit=False,
        character_coverage=1.0, model_type="unigram", num_threads=1, minloglevel=2,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, user_defined_symbols=LANGUAGE_TOKENS,
    )
    (folder / "spiece.model").write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))


def _t5(vocab_size: int, seed: int):
    """A one-layer T5 v1.1 with every weight redrawn from `seed`, `</s>` made likely along one direction."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size, d_model=D_MODEL, d_kv=D_KV, d_ff=FFN, num_layers=1, num_decoder_layers=1,
        num_heads=HEADS, relative_attention_num_buckets=8, relative_attention_max_distance=16,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0, dropout_rate=0.0,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" not in name:
                param.copy_(torch.randn(param.shape, generator=gen) * SIGMA)
        # A steady first feature in every embedding (T5 has no biases to carry one), read by the output
        # rows: `</s>` along it (some outputs end), `<pad>` and `<unk>` against it (never emitted).
        model.shared.weight[:, 0] = STEADY
        for name, param in model.decoder.named_parameters():
            if name.endswith((".o.weight", ".wo.weight")):
                param[0] = 0  # no decoder sublayer writes to it, so it stays positive
        model.lm_head.weight[1] = 0
        model.lm_head.weight[1, 0] = EOS_WEIGHT
        model.lm_head.weight[0] = model.lm_head.weight[2] = 0
        model.lm_head.weight[0, 0] = model.lm_head.weight[2, 0] = -10
    return model


def madlad_hf(folder: Path, seed: int = 0) -> Path:
    """Write the Hugging Face transformers folder of the same tiny MADLAD (config.json with model_type t5,
    model.safetensors, spiece.model and the tokenizer files), the layout google/madlad400-3b-mt has on the
    hub, with README.md naming the licence."""
    from transformers import T5Tokenizer

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    processor = _train_spm(folder)
    tokenizer = T5Tokenizer.from_pretrained(str(folder), extra_ids=0)
    _t5(processor.get_piece_size(), seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny random MADLAD-400 (T5), "
                                      "transformers\n", encoding="utf-8")
    return folder


def madlad_ct2(folder: Path, seed: int = 0) -> Path:
    """Write a CTranslate2 MADLAD folder (model.bin, config.json, shared_vocabulary.json, spiece.model,
    README.md with the licence) at `folder`, converted from `madlad_hf`'s folder."""
    from ctranslate2.converters import TransformersConverter

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    with tempfile.TemporaryDirectory(prefix="tiny-madlad-") as tmp:
        hf = madlad_hf(Path(tmp) / "hf", seed)
        (hf / "README.md").unlink()
        TransformersConverter(str(hf)).convert(str(folder), force=True)
        shutil.copy(hf / "spiece.model", folder / "spiece.model")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny random MADLAD-400 (T5), "
                                      "CTranslate2\n", encoding="utf-8")
    return folder
