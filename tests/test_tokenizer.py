"""Tests of WordPiece vocabulary learning, the tokenizer and the build_vocab command."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from kaleido.data import fashiongen
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.text import vocab as vocab_lib
from kaleido.utils import files
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SENTENCES = [
    "Long sleeve cotton T-shirt in white.",
    "Short sleeve cotton t-shirt in black. Crewneck collar.",
    "Slim-fit jeans in indigo. Five-pocket styling. Zip fly.",
    "Appliqué detailing at chest. Ribbed crewneck collar.",
    "Wool coat in camel. Notched lapel collar. Button closure at front.",
    "Leather jacket in black. Zip closure at front. Zippered pockets at waist.",
    "Silk blouse in ivory. Floral print throughout. Button closure at cuffs.",
    "Relaxed-fit hoodie in heather grey. Drawstring at hood. Kangaroo pocket.",
    "Knit sweater in navy. Ribbed knit cuffs and hem. Crewneck collar.",
    "Denim jacket in light blue. Button closure at front. Flap pockets at chest.",
    "Pleated skirt in black. Concealed zip closure at side.",
    "Cotton poplin shirt in white. Spread collar. Button closure at front.",
    "Straight-leg trousers in khaki. Belt loops. Four-pocket styling.",
    "Cropped t-shirt in pink. Graphic print at front. Short sleeves.",
    "Oversized wool sweater in beige. Dropped shoulders. Ribbed cuffs.",
    "Leather sneakers in white. Lace-up closure. Rubber sole.",
    "Suede ankle boots in brown. Pull-tab at heel. Stacked heel.",
    "Canvas tote bag in black. Twin handles. Logo print at front.",
    "Slim-fit blazer in navy. Notched lapel. Two-button closure.",
    "Linen shorts in sand. Elasticized drawstring waistband. Side pockets.",
    "Striped t-shirt in navy and white. Crewneck collar. Short sleeves.",
    "Quilted down jacket in olive. Stand collar. Zip closure at front.",
    "Cashmere scarf in grey. Fringed edges.",
    "Floral print dress in red. V-neck collar. Tie closure at waist.",
    "Fleece sweatshirt in black. Ribbed crewneck collar, cuffs and hem.",
    "Cotton chinos in olive. Slim fit. Zip fly with button closure.",
    "Leather belt in black. Silver-tone pin buckle.",
    "Wool beanie in charcoal. Ribbed knit throughout.",
    "Satin slip dress in champagne. Adjustable spaghetti straps.",
    "Denim jeans in black. Skinny fit. Five-pocket styling. Button fly.",
    "Tie-dye t-shirt in multicolor. Crewneck collar. Logo at chest.",
    "Merino wool cardigan in burgundy. Button closure at front. Ribbed hem.",
    "Nylon windbreaker in yellow. Hooded. Zip closure. Elasticized cuffs.",
    "Leather loafers in tan. Penny strap at vamp. Stacked heel.",
    "Cotton twill cargo pants in khaki. Flap pockets at legs.",
    "Mesh tank top in white. Scoop neck. Racerback.",
    "Appliqué patch at sleeve. Long sleeve t-shirt in grey.",
    "Corduroy jacket in brown. Spread collar. Patch pockets at chest.",
    "Polka dot blouse in navy. Bow tie at collar. Long sleeves.",
    "High-waisted jeans in light blue. Wide leg. Raw hem.",
    "Crossbody bag in black leather. Adjustable shoulder strap. Zip closure.",
    "Silk tie in navy. Jacquard pattern throughout.",
    "Wool trousers in grey. Pleated front. Slant pockets.",
    "Puffer vest in black. Stand collar. Zip closure at front.",
    "Sequined mini skirt in silver. Concealed zip at back.",
    "Graphic hoodie in white. Logo print at chest. Kangaroo pocket.",
    "Jersey leggings in black. Elasticized waistband.",
    "Rib knit turtleneck in cream. Long sleeves.",
    "Swim shorts in blue. Drawstring waistband. Mesh lining.",
    "Café racer leather jacket in black. Asymmetric zip closure.",
]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory) -> str:
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  vocab_lib.write_vocab(path, vocab_lib.learn_vocab(SENTENCES, vocab_size=400, min_token_count=2))
  return path


@pytest.fixture(scope="module")
def tokenizer(vocab_file) -> tokenizer_lib.KaleidoTokenizer:
  return tokenizer_lib.KaleidoTokenizer(vocab_file, max_seq_length=64)


def test_special_tokens_come_first(tokenizer, vocab_file):
  ids = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
         tokenizer.mask_id)
  assert ids == (0, 1, 2, 3, 4)
  with open(vocab_file, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert tokenizer.vocab_size == len(lines) <= 400
  assert tuple(lines[:5]) == vocab_lib.SPECIAL_TOKENS
  assert tokenizer.vocab_file == vocab_file
  assert tokenizer.max_seq_length == 64


def test_training_sentences_have_no_unknown_tokens(tokenizer):
  encoded = tokenizer.encode_batch(SENTENCES)
  for ids in encoded.token_ids:
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
    assert tokenizer.unk_id not in ids
    assert tokenizer.cls_id not in ids[1:-1] and tokenizer.sep_id not in ids[1:-1]
  assert not any(encoded.truncated)


def test_truncation_flag_is_set_exactly_when_cut(vocab_file):
  tokenizer = tokenizer_lib.KaleidoTokenizer(vocab_file, max_seq_length=6)
  texts = ["black", "cotton t-shirt", "cotton t-shirt black", "cotton t-shirt black white"]
  encoded = tokenizer.encode_batch(texts)
  assert [len(ids) for ids in encoded.token_ids] == [3, 6, 6, 6]
  assert encoded.truncated == [False, False, True, True]
  full = tokenizer_lib.KaleidoTokenizer(vocab_file, max_seq_length=64).encode_batch(texts)
  assert encoded.token_ids[3] == full.token_ids[3][:5] + [tokenizer.sep_id]


def test_empty_text_and_empty_batch(tokenizer):
  encoded = tokenizer.encode_batch(["", "   "])
  assert encoded.token_ids == [[tokenizer.cls_id, tokenizer.sep_id]] * 2
  assert encoded.truncated == [False, False]
  assert tokenizer.encode_batch([]) == tokenizer_lib.EncodedBatch(token_ids=[], truncated=[])


def test_accents_and_case_are_stripped(tokenizer):
  encoded = tokenizer.encode_batch(["appliqué", "applique", "APPLIQUÉ", "Café"])
  assert encoded.token_ids[0] == encoded.token_ids[1] == encoded.token_ids[2]
  assert tokenizer.decode(encoded.token_ids[3]) == "cafe"


def test_hyphens_and_punctuation_split(tokenizer):
  ids = tokenizer.encode_batch(["T-shirt, slim-fit."]).token_ids[0]
  assert tokenizer.tokens(ids) == [
      "[CLS]", "t", "-", "shirt", ",", "slim", "-", "fit", ".", "[SEP]"]


def test_unseen_word_splits_into_pieces(tokenizer):
  ids = tokenizer.encode_batch(["blazers"]).token_ids[0]
  assert tokenizer.unk_id not in ids
  assert any(token.startswith("##") for token in tokenizer.tokens(ids))
  assert tokenizer.decode(ids) == "blazers"


def test_decode_round_trip(tokenizer):
  text = "ribbed crewneck collar in navy and white"
  encoded = tokenizer.encode_batch([text, "Zip closure at front."])
  assert tokenizer.decode(encoded.token_ids[0]) == text
  assert tokenizer.decode(encoded.token_ids[1] + [tokenizer.pad_id] * 3) == "zip closure at front ."
  with pytest.raises(ValueError, match="outside the vocabulary"):
    tokenizer.tokens([tokenizer.vocab_size])


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "is empty"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\nshirt\n", r"lacks the special token \[MASK\]"),
    ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nshirt\nshirt\n", "repeats the token 'shirt'"),
])
def test_bad_vocab_file_errors(tmp_path, content, message):
  path = tmp_path / "vocab.txt"
  if content is not None:
    path.write_text(content, encoding="utf-8")
  with pytest.raises(vocab_lib.VocabError, match=message) as error:
    tokenizer_lib.KaleidoTokenizer(str(path))
  assert "data/build_vocab.py" in str(error.value)


def test_vocab_hash_follows_file_bytes(tmp_path):
  path = str(tmp_path / "vocab.txt")
  vocab_lib.write_vocab(path, list(vocab_lib.SPECIAL_TOKENS) + ["shirt"])
  assert not os.path.exists(path + ".tmp")
  first = tokenizer_lib.KaleidoTokenizer(path).vocab_hash
  with open(path, "rb") as f:
    assert first == hashlib.sha256(f.read()).hexdigest() == files.file_sha256(path)
  vocab_lib.write_vocab(path, list(vocab_lib.SPECIAL_TOKENS) + ["shirt", "##s"])
  assert tokenizer_lib.KaleidoTokenizer(path).vocab_hash != first


def test_learn_vocab_rejects_unusable_input():
  with pytest.raises(vocab_lib.VocabError, match="no room"):
    vocab_lib.learn_vocab(SENTENCES, vocab_size=5)
  with pytest.raises(vocab_lib.VocabError, match="has a word"):
    vocab_lib.learn_vocab(["", " "], vocab_size=100)


def _build_vocab(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "data", "build_vocab.py"), *flags],
      capture_output=True, text=True, timeout=120, check=False)


def test_build_vocab_command(tmp_path):
  catalog_path = str(tmp_path / "catalog.h5")
  products = catalogs.fashiongen_products(3, descriptions=SENTENCES[:3])
  assert fashiongen.write_fashiongen(catalog_path, products) == 6
  texts = vocab_lib.catalog_texts(catalog_path, "name_and_description")
  assert texts[-1] == f"{products[2].text.name}. {SENTENCES[2]}"
  output = str(tmp_path / "vocab.txt")
  result = _build_vocab(f"--input={catalog_path}", f"--output={output}", "--vocab_size=300")
  assert result.returncode == 0, result.stderr
  assert "Read 6 texts" in result.stdout
  tokenizer = tokenizer_lib.KaleidoTokenizer(output)
  assert tokenizer.vocab_size <= 300
  assert tokenizer.vocab_hash in result.stdout
  assert not any(tokenizer.unk_id in ids for ids in tokenizer.encode_batch(texts).token_ids)

  missing = _build_vocab(f"--input={tmp_path / 'missing.h5'}", f"--output={output}")
  assert missing.returncode == 1
  assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_vocabulary_texts_sample_is_bounded_seeded_and_in_row_order(tmp_path, monkeypatch):
  monkeypatch.setattr(vocab_lib, "_READ_ROWS", 7)  # several blocks of rows
  lines = [{"image": "x.png", "text": f"text {i}", "product_id": f"p{i}", "category": "TOPS",
            "subcategory": "SHIRTS"} for i in range(50)]
  path = catalogs.write_jsonl(str(tmp_path), lines)
  every = vocab_lib.catalog_texts(path, "description")
  assert every == [f"text {i}" for i in range(50)]
  assert vocab_lib.catalog_texts(path, "description", sample_size=50) == every
  sample = vocab_lib.catalog_texts(path, "description", sample_size=10, seed=1)
  assert len(sample) == len(set(sample)) == 10
  assert sample == sorted(sample, key=every.index)  # row order, each text once
  assert vocab_lib.catalog_texts(path, "description", sample_size=10, seed=1) == sample
  assert vocab_lib.catalog_texts(path, "description", sample_size=10, seed=2) != sample
