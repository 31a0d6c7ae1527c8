"""Lower-case WordPiece vocabularies: learning one from texts, writing, reading and hashing it.

A vocabulary file holds one token per line, bert-base-uncased style: continuation pieces start
with "##" and the special tokens sit first, [PAD] at id 0. Learning uses tensorflow_text's own
WordPiece learner with the same word splitting the tokenizer applies, so every character of the
training words is in the vocabulary and words seen in training never become [UNK].
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as vocab_learner

from kaleido import errors
from kaleido.data import catalogs
from kaleido.utils import files
from kaleido.utils import text_validity

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Word splitting shared by learning and tokenisation: case folding, NFD, accent stripping.
BERT_TOKENIZER_PARAMS = {"lower_case": True}
_FIX_HINT = ("pass bert-base-uncased's vocab.txt with --vocab_file (it ships in Google's "
             "uncased_L-12_H-768_A-12.zip and Hugging Face's bert-base-uncased), or build one "
             "with python data/build_vocab.py")
_READ_ROWS = 4096  # Catalog rows per text-only read.


class VocabError(errors.KaleidoError):
  """A vocabulary that cannot be learned or used (missing file, no special tokens, ...)."""


@dataclasses.dataclass(frozen=True)
class SpecialIds:
  """The ids of a vocabulary's SPECIAL_TOKENS, and its size, as plain ints."""
  pad_id: int
  unk_id: int
  cls_id: int
  sep_id: int
  mask_id: int
  vocab_size: int


def special_ids(tokens: Sequence[str]) -> SpecialIds:
  """The SpecialIds of a vocabulary's `tokens` (as read_vocab gives them: every special token is
  there)."""
  ids = {token: i for i, token in enumerate(tokens) if token in SPECIAL_TOKENS}
  return SpecialIds(pad_id=ids["[PAD]"], unk_id=ids["[UNK]"], cls_id=ids["[CLS]"],
                    sep_id=ids["[SEP]"], mask_id=ids["[MASK]"], vocab_size=len(tokens))


def special_ids_of(vocab_file: str) -> SpecialIds:
  """The SpecialIds of a vocabulary file (read and checked; no TensorFlow work)."""
  return special_ids(read_vocab(vocab_file))


def catalog_texts(path: str, field: str, text_encoding: str = "auto", sample_size: int = 0,
                  seed: int = 0) -> list[str]:
  """The `field` text (one of catalog.TEXT_FIELDS) of every row of the catalog at `path`, or,
  with `sample_size` smaller than the catalog, of that many rows drawn without replacement
  (seeded, in row order), so memory stays bounded however large the catalog is."""
  catalog = catalogs.open_catalog(path, text_encoding)
  try:
    num_rows = len(catalog)
    chosen = None
    if 0 < sample_size < num_rows:
      chosen = np.sort(np.random.default_rng(seed).choice(num_rows, sample_size, replace=False))
    texts = []
    for start in range(0, num_rows, _READ_ROWS):
      stop = min(start + _READ_ROWS, num_rows)
      if chosen is not None:
        wanted = chosen[np.searchsorted(chosen, start):np.searchsorted(chosen, stop)]
        if not len(wanted):
          continue
        start, stop, keep = int(wanted[0]), int(wanted[-1]) + 1, set(wanted.tolist())
      rows = catalog.read(start, stop, with_images=False)
      texts += [row.text(field) for row in rows if chosen is None or row.index in keep]
    return texts
  finally:
    catalog.close()


def learn_vocab(texts: Iterable[str], vocab_size: int, min_token_count: int = 10,
                batch_size: int = 1024) -> list[str]:
  """Learns at most `vocab_size` WordPiece tokens (more only if the alphabet alone is larger).

  Special tokens come first, then single characters, then longer pieces by frequency. A piece
  other than a single character needs `min_token_count` occurrences to be kept.
  """
  if vocab_size <= len(SPECIAL_TOKENS):
    raise VocabError(
        f"vocab_size {vocab_size} leaves no room beside the {len(SPECIAL_TOKENS)} special "
        "tokens; ask for a few thousand tokens.")
  texts = list(texts)
  if all(text_validity.is_empty(text) for text in texts):
    raise VocabError(f"None of the {len(texts)} texts has a word to learn a vocabulary from.")
  dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(batch_size)
  return vocab_learner.bert_vocab_from_dataset(
      dataset, vocab_size, list(SPECIAL_TOKENS), bert_tokenizer_params=BERT_TOKENIZER_PARAMS,
      learn_params={"lower_thresh": min_token_count})


def write_vocab(path: str, tokens: Sequence[str]) -> None:
  """Writes `tokens` one per line, atomically."""
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8", newline="\n") as f:
      f.writelines(token + "\n" for token in tokens)


def read_vocab(path: str) -> list[str]:
  """The tokens of a vocabulary file, checked to be usable by the tokenizer."""
  if not os.path.isfile(path):
    raise VocabError(f"Vocabulary file {path!r} does not exist; {_FIX_HINT}.")
  with open(path, "rb") as f:
    data = f.read()
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as error:
    raise VocabError(f"Vocabulary file {path!r} is not UTF-8 text ({error}); {_FIX_HINT}.") \
        from error
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()
  tokens = [line.rstrip("\r") for line in lines]
  if not tokens:
    raise VocabError(f"Vocabulary file {path!r} is empty; {_FIX_HINT}.")
  missing = [token for token in SPECIAL_TOKENS if token not in tokens]
  if missing:
    raise VocabError(
        f"Vocabulary file {path!r} lacks the special token {missing[0]} (missing: "
        f"{' '.join(missing)}); {_FIX_HINT}.")
  seen = set()
  for line_number, token in enumerate(tokens, start=1):
    if token in seen:
      raise VocabError(
          f"Vocabulary file {path!r} repeats the token {token!r} on line {line_number}; "
          f"{_FIX_HINT}.")
    seen.add(token)
  return tokens

