"""The shared tiny-model fixtures load offline with the Auto* classes, as the serving tests rely on."""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer


def test_tiny_classifier_loads_with_auto_classes(tiny_bert_dir):
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"):
        assert (tiny_bert_dir / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    batch = tokenizer(["the movie was good", "bad food"], padding=True, return_tensors="pt")
    assert tokenizer.unk_token_id not in batch["input_ids"].tolist()[0]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (2, 2)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (32, 2, 2)


def test_tiny_encoder_is_a_plain_bert_model(tiny_bert_encoder_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_encoder_dir)
    model = AutoModel.from_pretrained(tiny_bert_encoder_dir).eval()
    assert type(model).__name__ == "BertModel"
    batch = tokenizer(["a great day"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert hidden.shape[-1] == 32
