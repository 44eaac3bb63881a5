"""Build tiny, randomly initialised BERT directories in Hugging Face format, offline.

Tests and the local demo need a model of the reference shape (config.json, model.safetensors, tokenizer
files) that loads in milliseconds and never touches the network; any real model directory of the same shape
can replace it without code changes.
"""

from __future__ import annotations

from pathlib import Path

POSITIVE_WORDS = ("good", "great", "excellent", "wonderful", "happy", "love", "best", "nice")
NEGATIVE_WORDS = ("bad", "awful", "terrible", "poor", "sad", "hate", "worst", "ugly")
NEUTRAL_WORDS = (
    "the", "a", "movie", "film", "story", "food", "place", "service", "was", "is", "really", "very",
    "this", "that", "it", "quite", "show", "book", "day", "and", "of", "to", "in", "we", "they", "i",
)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
LABELS = ("negative", "positive")


def vocabulary() -> list[str]:
    """Special tokens first (ids 0-4, as BERT expects), then the demo words and a few punctuation marks."""
    words = [*POSITIVE_WORDS, *NEGATIVE_WORDS, *NEUTRAL_WORDS, ".", ",", "!", "?"]
    return [*SPECIAL_TOKENS, *words]


def build_tiny_bert(out: Path, *, head: bool = True, seed: int = 0, hidden: int = 32, layers: int = 2,
                    heads: int = 2, max_positions: int = 128) -> Path:
    """Write a tiny BERT (with a 2-class head if `head`, else a plain encoder) and its tokenizer into `out`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tokenizer = BertTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, model_max_length=max_positions)
    tokenizer.save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")

    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden * 2, max_position_embeddings=max_positions, type_vocab_size=2,
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config) if head else BertModel(config)
    model.save_pretrained(out, safe_serialization=True)
    return out
