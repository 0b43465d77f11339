"""Offline tokenizers beyond the T5/Gemma ones of offline.py: Llama (BPE) and CLIP (byte-level BPE),
trained in memory on the same fixed corpus, so every build is byte-identical.

A separate module so adding a recipe does not change the builder fingerprint (and so the
goldens) of the families that do not use it; a family that does names it in `BUILT_ON`.
"""

from __future__ import annotations

from workbench.families.offline import prompt_corpus, train_bpe_vocab


def llama_tokenizer(model_max_length: int = 1024, vocab_size: int = 512):
    """A Llama BPE tokenizer (HunyuanVideo's Llama text encoder) built without the hub: the
    in-memory sentencepiece BPE of offline.py, wrapped in `LlamaTokenizer` (<s>/</s>/<unk> named after
    the trained ids; pad = <pad>, which the HunyuanVideo pipeline pads with)."""
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    pieces = train_bpe_vocab(vocab_size)
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, dict(pieces))
    return LlamaTokenizer(vocab=vocab, merges=merges, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                          pad_token="<pad>", model_max_length=model_max_length)


def clip_tokenizer(model_max_length: int = 77, vocab_size: int = 400):
    """A CLIP byte-level BPE tokenizer built without the hub: byte alphabet + merges learned
    deterministically (most frequent adjacent pair, ties by text) from the fixed corpus."""
    from collections import Counter

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    vocab_list = alphabet + [a + "</w>" for a in alphabet]
    words = Counter()
    for line in prompt_corpus():
        for word in line.lower().replace(",", " ,").split():
            words[tuple(word[:-1]) + (word[-1] + "</w>",)] += 1
    merges = []
    while len(vocab_list) + len(merges) < vocab_size - 2:
        pairs = Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    vocab_list += [m.replace(" ", "") for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for piece in vocab_list:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
