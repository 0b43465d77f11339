"""Offline tokenizers beyond the T5/Gemma ones of offline.py: Llama (BPE) and CLIP (byte-level BPE),
trained in memory on the same fixed corpus, so every build is byte-identical.

A separate module so adding a recipe does not change the builder fingerprint (and so the
goldens) of the families that do not use it; a family that does names it in `BUILT_ON`.
"""

from __future__ import annotations

from workbench.families.offline import prompt_corpus, train_bpe_vocab


def train_llama_bpe(vocab_size: int, extra_text: str = "", special_tokens: tuple[str, ...] = ()):
    """Sentencepiece BPE as offline.train_bpe_vocab (Gemma-style ids, byte fallback, deterministic),
    on the fixed corpus plus `extra_text`'s lines ten times (a prompt template, so it tokenizes
    to about as many tokens as with the released tokenizer), `special_tokens` kept whole."""
    import io

    import sentencepiece as spm

    lines = prompt_corpus() + [line for line in extra_text.replace("{}", "").split("\n") if line.strip()] * 10
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=["<mask>", *special_tokens], byte_fallback=True,
        add_dummy_prefix=False, normalization_rule_name="identity", character_coverage=1.0, num_threads=1,
        minloglevel=2, max_sentence_length=100000)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def llama_tokenizer(model_max_length: int = 1024, vocab_size: int = 512, extra_text: str = "",
                    special_tokens: tuple[str, ...] = ()):
    """A Llama BPE tokenizer (HunyuanVideo's Llama text encoder) built without the hub, wrapped in
    `LlamaTokenizer` with the trained ids' names (<bos>/<eos>/<unk>; pad = <pad>, id 0)."""
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    pieces = train_bpe_vocab(vocab_size) if not extra_text and not special_tokens else train_llama_bpe(
        vocab_size, extra_text, special_tokens)
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, dict(pieces))
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                               pad_token="<pad>", model_max_length=model_max_length)
    if special_tokens:   # already in the vocabulary (user-defined symbols): kept whole, same ids
        tokenizer.add_tokens(list(special_tokens), special_tokens=True)
    return tokenizer


def clip_tokenizer(model_max_length: int = 77, vocab_size: int = 640):
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
        merges.append((a, b))
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
    vocab_list += [a + b for a, b in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for piece in vocab_list:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
