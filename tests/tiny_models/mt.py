"""Tiny random-weight translation models in the formats users download, built at test time.

Why: `pipeline.store.hf_to_argos` must be proven on the real on-disk formats (a Hugging Face
Marian folder, an OPUS-MT Marian release, Hugging Face NLLB-200 and M2M100 folders)
and against the real reference decoder (transformers' `generate`), with no hub access.
Weights are random but large enough (std `SIGMA`) that outputs depend on the input; a
logit bias towards `</s>` lets some outputs end on their own while others run to the
length cap, so both endings are compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import yaml

from .argos import udhr_column

D_MODEL, FFN, HEADS = 32, 64, 2
SIGMA = 0.5
EOS_WEIGHT = {"nllb": 4.0, "m2m100": 3.0}  # chosen so that some outputs end, others loop to the cap
NLLB_LANGS = ["kaz_Cyrl", "uig_Arab", "eng_Latn", "rus_Cyrl"]


def _spm(lines: list[str], prefix: Path, vocab_size: int, model_type: str) -> list[str]:
    """Train a SentencePiece model on `lines`; return its pieces in id order."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    corpus = prefix.with_suffix(".txt")
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size, hard_vocab_limit=False,
        character_coverage=1.0, model_type=model_type, num_threads=1, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(prefix.with_suffix(".model")))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Redraw every trained weight with std SIGMA (layer norms and fixed sinusoids stay)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" not in name and "embed_positions" not in name:
                param.copy_(torch.randn(param.shape, generator=gen) * SIGMA)


def build_marian_hf(root: Path, *, seed: int = 0, eos_bias: float = 12.0, targets: tuple[str, ...] = ()) -> Path:
    """A Hugging Face Marian folder shaped like an OPUS-MT kk/ug->en one (source.spm, target.spm, vocab.json).

    `targets` (e.g. ("eng", "rus")) makes it a multilingual-target model with `>>eng<<` tokens.
    """
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder = root / ("opus-mt-tiny-trk-mul" if targets else "opus-mt-tiny-trk-en")
    if folder.exists():
        shutil.rmtree(folder)
    source = _spm(udhr_column("kk") + udhr_column("ug"), root / "spm" / "source", 300, "unigram")
    target = _spm(udhr_column("en"), root / "spm" / "target", 200, "unigram")
    pieces = list(dict.fromkeys(p for p in source[3:] + target[3:]))  # one joint vocabulary, as OPUS-MT has
    # Marian's order; transformers appends <pad>
    vocab = ["</s>", "<unk>", *(f">>{t}<<" for t in targets), *pieces, "<pad>"]
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    shutil.copy(root / "spm" / "source.model", folder / "source.spm")
    shutil.copy(root / "spm" / "target.model", folder / "target.spm")
    pad = len(vocab) - 1
    config = MarianConfig(
        vocab_size=len(vocab), d_model=D_MODEL, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
        max_position_embeddings=512, pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
        scale_embedding=True, activation_function="swish",
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    _randomize(model, seed)
    with torch.no_grad():
        model.model.shared.weight[pad] = 0  # Marian starts decoding from a zero embedding
        model.final_logits_bias[0, 0] = eos_bias
        model.final_logits_bias[0, 1] = -100.0  # never <unk>: CTranslate2 would replace it from the source
    model.save_pretrained(folder)
    tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"))
    tokenizer.save_pretrained(folder)
    return folder


def marian_native_from_hf(hf_folder: Path, out: Path) -> Path:
    """The same weights as an OPUS-MT release: Marian's .npz names, decoder.yml, a vocab .yml, both .spm files.

    Marian stores projections as [in, out] and biases as [1, out]; its vocabulary has
    no <pad> (transformers adds one at the end, CTranslate2's HF converter drops it).
    """
    from transformers import MarianMTModel

    model = MarianMTModel.from_pretrained(hf_folder)
    cfg = model.config
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    weights: dict[str, np.ndarray] = {"Wemb": state["model.shared.weight"][:-1],
                                      "decoder_ff_logit_out_b": state["final_logits_bias"][:, :-1]}

    def attention(hf: str, marian: str) -> None:
        for x, y in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
            weights[f"{marian}_W{x}"] = state[f"{hf}.{y}.weight"].T
            weights[f"{marian}_b{x}"] = state[f"{hf}.{y}.bias"][None]

    def norm(hf: str, marian: str) -> None:
        weights[f"{marian}_ln_scale"] = state[f"{hf}.weight"][None]
        weights[f"{marian}_ln_bias"] = state[f"{hf}.bias"][None]

    for side, count in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        for i in range(count):
            hf, mar = f"model.{side}.layers.{i}", f"{side}_l{i + 1}"
            attention(f"{hf}.self_attn", f"{mar}_self")
            norm(f"{hf}.self_attn_layer_norm", f"{mar}_self_Wo")
            if side == "decoder":
                attention(f"{hf}.encoder_attn", f"{mar}_context")
                norm(f"{hf}.encoder_attn_layer_norm", f"{mar}_context_Wo")
            for n in (1, 2):
                weights[f"{mar}_ffn_W{n}"] = state[f"{hf}.fc{n}.weight"].T
                weights[f"{mar}_ffn_b{n}"] = state[f"{hf}.fc{n}.bias"][None]
            norm(f"{hf}.final_layer_norm", f"{mar}_ffn_ffn")
    options = {
        "type": "transformer", "enc-depth": cfg.encoder_layers, "dec-depth": cfg.decoder_layers,
        "transformer-heads": cfg.encoder_attention_heads, "dim-emb": cfg.d_model,
        "transformer-ffn-activation": "swish", "transformer-preprocess": "", "transformer-postprocess": "dan",
        "transformer-postprocess-emb": "d", "transformer-decoder-autoreg": "self-attention",
        "transformer-no-projection": False, "transformer-guided-alignment-layer": "last", "tied-embeddings-all": True,
    }
    weights["special:model.yml"] = np.frombuffer(yaml.safe_dump(options).encode() + b"\0", dtype=np.int8)

    out.mkdir(parents=True)
    np.savez(out / "opus.spm32k-spm32k.transformer.model1.npz.best-perplexity.npz", **weights)
    vocab = json.loads((hf_folder / "vocab.json").read_text(encoding="utf-8"))
    lines = []
    for token, index in sorted(vocab.items(), key=lambda item: item[1])[:-1]:  # drop <pad>
        escaped = token.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'"{escaped}": {index}')
    (out / "opus.spm32k-spm32k.vocab.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "decoder.yml").write_text(yaml.safe_dump({
        "models": ["opus.spm32k-spm32k.transformer.model1.npz.best-perplexity.npz"],
        "vocabs": ["opus.spm32k-spm32k.vocab.yml"] * 2, "beam-size": 6, "normalize": 0.6,
    }))
    for name in ("source.spm", "target.spm"):
        shutil.copy(hf_folder / name, out / name)
    return out


def build_m2m(root: Path, family: str, *, seed: int = 0, eos_weight: float | None = None) -> Path:
    """A Hugging Face M2M100ForConditionalGeneration folder with an NLLB or an M2M100 tokenizer.

    M2M100 has no logit bias, so `</s>` is made likely another way: the decoder's final
    layer norm gets a bias `b` and the output row of `</s>` points along `b`.
    """
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer, NllbTokenizer

    folder = root / f"{family}-tiny"
    if folder.exists():
        shutil.rmtree(folder)
    lines = udhr_column("kk") + udhr_column("ug") + udhr_column("en") + udhr_column("ru")
    pieces = _spm(lines, root / "spm" / family, 400, "bpe")
    folder.mkdir(parents=True)
    shutil.copy(root / "spm" / f"{family}.model", folder / "sentencepiece.bpe.model")
    if family == "nllb":
        tokenizer = NllbTokenizer.from_pretrained(str(folder), extra_special_tokens=NLLB_LANGS)
    else:
        fairseq = ["<s>", "<pad>", "</s>", "<unk>"] + [p for p in pieces if p not in ("<s>", "</s>", "<unk>")]
        (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(fairseq)}, ensure_ascii=False))
        tokenizer = M2M100Tokenizer(str(folder / "vocab.json"), str(folder / "sentencepiece.bpe.model"),
                                    num_madeup_words=0)
    # transformers 5's M2M100Tokenizer leaves its __xx__ language ids out of len() and get_vocab().
    ids = [*tokenizer.get_vocab().values(), *getattr(tokenizer, "lang_token_to_id", {}).values()]
    config = M2M100Config(
        vocab_size=max(ids) + 1, d_model=D_MODEL, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
        max_position_embeddings=512, scale_embedding=True, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2, activation_function="relu", tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config).eval()
    _randomize(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        direction = torch.randn(D_MODEL, generator=gen)
        direction /= direction.norm()
        model.model.decoder.layer_norm.bias.copy_(2 * direction)
        model.lm_head.weight[2] = (eos_weight or EOS_WEIGHT[family]) * direction  # </s>
        model.lm_head.weight[3] = -10 * direction  # never <unk>
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# tiny\n" if family == "nllb" else "# tiny\n")
    return folder


def build_nllb_ct2(folder: Path, seed: int = 0) -> Path:
    """An NLLB-200 folder converted with CTranslate2's own converter, as `ct2-transformers-converter
    --copy_files sentencepiece.bpe.model README.md` leaves it (the card keeps its licence line)."""
    import tempfile

    from ctranslate2.converters import TransformersConverter

    with tempfile.TemporaryDirectory() as scratch:
        hf = build_m2m(Path(scratch), "nllb", seed=seed)
        if folder.exists():
            shutil.rmtree(folder)
        TransformersConverter(str(hf), copy_files=["sentencepiece.bpe.model", "README.md"]).convert(str(folder))
    return folder
