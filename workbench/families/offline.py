"""Building blocks for official reference pipelines built offline (no hub access).

Tokenizers are trained in memory on a fixed, generated corpus so every build is
byte-identical; model weights are random-init from a seeded generator.
"""

from __future__ import annotations

import io
import random

import torch

_SUBJECTS = ["a cat", "a dog", "a red fox", "two horses", "an old man", "a child", "a robot", "a bird",
             "a small boat", "a city street", "a forest", "the ocean", "a mountain", "a train", "a drummer"]
_VERBS = ["walking", "running", "dancing", "sleeping", "jumping", "flying", "swimming", "singing",
          "playing", "waiting", "turning", "glowing", "falling", "rising", "drifting"]
_PLACES = ["in the rain", "at sunset", "under the stars", "on a beach", "in a kitchen", "in slow motion",
           "on a snowy hill", "near a river", "in a busy market", "inside a temple", "over the clouds"]
_STYLES = ["cinematic", "bright tones", "low quality", "overexposed", "static", "blurred details",
           "worst quality", "high detail", "soft light", "dramatic", "warm colors", "noisy", "sharp focus"]


_SYLLABLES = ["ka", "lo", "mi", "ren", "sto", "vi", "dra", "ul", "pe", "zor", "tam", "qui", "bel", "nox",
              "fa", "gri", "hu", "jen", "wy", "ex"]


def prompt_corpus(lines: int = 600, seed: int = 0) -> list[str]:
    """Prompt-like sentences from fixed word lists plus made-up words (deterministic)."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_PLACES)]
        words += rng.sample(_STYLES, k=rng.randint(1, 3))
        words.append("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))))
        out.append(", ".join(words) if rng.random() < 0.5 else " ".join(words))
    return out


def train_unigram_vocab(vocab_size: int = 240) -> list[tuple[str, float]]:
    """A sentencepiece unigram model trained in memory (pad=0, eos=1, unk=2, no bos)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(prompt_corpus()), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def t5_tokenizer(model_max_length: int, vocab_size: int = 240):
    """A T5-style tokenizer (as used by UMT5/T5 encoders) built without the hub."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=train_unigram_vocab(vocab_size), extra_ids=0, model_max_length=model_max_length)


def train_bpe_vocab(vocab_size: int = 512) -> list[tuple[str, float]]:
    """A sentencepiece BPE model trained in memory with Gemma's special ids and byte fallback.

    Ids `<pad>`=0, `<eos>`=1, `<bos>`=2, `<unk>`=3, `<mask>`=4; no dummy prefix and identity
    normalisation, as Gemma's tokenizer expects. `num_threads=1` keeps it deterministic.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(prompt_corpus()), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=["<mask>"], byte_fallback=True, add_dummy_prefix=False,
        normalization_rule_name="identity", character_coverage=1.0, num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def gemma_tokenizer(model_max_length: int = 1024, vocab_size: int = 512):
    """A Gemma BPE tokenizer (as used by LTX-2's Gemma 3 encoder) built without the hub.

    transformers 5 defaults `add_bos_token` to False; Gemma prompts start with `<bos>`.
    """
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    pieces = train_bpe_vocab(vocab_size)
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, dict(pieces))
    return GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, model_max_length=model_max_length)


def seeded(seed: int = 0):
    """Seed torch before building each component, so weights do not depend on build order."""
    torch.manual_seed(seed)


def clone_parameters(module: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter and buffer fresh (aligned) storage.

    `from_pretrained` leaves tensors memory-mapped at unaligned offsets, which moves CPU
    matmuls by ~1e-7; the workbench loader copies weights into fresh storage, so the
    reference side is treated the same way before comparing.
    """
    with torch.no_grad():
        for p in module.parameters():
            p.data = p.data.clone()
        for b in module.buffers():
            b.data = b.data.clone()
    return module.eval()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickle_weights(folder) -> None:
    """The official side loads safetensors only, as the workbench loader does: a module folder
    whose weights are pickle files only (`diffusion_pytorch_model.bin`) is refused by name, before
    diffusers or transformers would fall back to `torch.load`."""
    from pathlib import Path

    from workbench.errors import ComponentLoadError

    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles:
        raise ComponentLoadError(f"{folder}: only pickle weights ({', '.join(pickles[:3])}); the official side "
                                 "loads safetensors only: convert them to safetensors")


def load_official_pipeline(pipeline_class: str, official_dir, device, dtype=None, fp32_modules=()):
    """An official diffusers pipeline as a user loads it: fp32 as saved, or `dtype=...` with
    `fp32_modules` kept in fp32; parameters cloned (aligned) as the workbench loader does.
    Weights come from safetensors only (`use_safetensors=True`; pickle-only folders are refused)."""
    from pathlib import Path

    import diffusers

    from workbench.errors import ComponentLoadError

    for folder in sorted(Path(official_dir).iterdir()) if Path(official_dir).is_dir() else ():
        refuse_pickle_weights(folder)
    try:
        pipe = getattr(diffusers, pipeline_class).from_pretrained(
            str(official_dir), use_safetensors=True, **({"dtype": dtype} if dtype else {}))
    except (OSError, ValueError) as exc:  # a missing or unreadable file, as diffusers words it
        raise ComponentLoadError(f"{official_dir}: the official {pipeline_class} cannot be loaded "
                                 f"({' '.join(str(exc).split())})") from None
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            clone_parameters(module)
            if name in fp32_modules:
                module.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def quiet_hf() -> None:
    """Silence diffusers/transformers progress bars and load chatter: our own bars say more."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.set_verbosity_error()
        log.disable_progress_bar()


def gradient_image(width: int = 48, height: int = 40):
    """A deterministic RGB conditioning image: red rises left to right, green top to bottom,
    blue along the diagonal. Not square, so resizing and center-cropping both matter."""
    import numpy as np
    from PIL import Image

    x = np.linspace(0.0, 255.0, width)[None, :].repeat(height, axis=0)
    y = np.linspace(0.0, 255.0, height)[:, None].repeat(width, axis=1)
    return Image.fromarray(np.stack([x, y, (x + y) / 2], axis=-1).round().astype(np.uint8))
