"""WordPiece tokenisation of product texts, bert-base-uncased style.

tensorflow_text's BertTokenizer case-folds the text, strips accents (NFD), splits it on
whitespace and punctuation ("t-shirt" -> t - shirt) and cuts every word into the longest
wordpieces of the vocabulary. A sequence is `[CLS] wordpieces... [SEP]`, cut to at most
`max_seq_length` ids and not padded.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from kaleido import errors
from kaleido.text import vocab as vocab_lib
from kaleido.utils import files

_SUFFIX = "##"


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
  """Unpadded `[CLS] ... [SEP]` ids of each text, and whether its wordpieces were cut."""
  token_ids: list[list[int]]
  truncated: list[bool]


class KaleidoTokenizer:
  """Turns texts into token ids of a vocabulary file and back."""

  def __init__(self, vocab_file: str, max_seq_length: int = 64):
    if max_seq_length < 2:
      raise errors.KaleidoError(
          f"max_seq_length {max_seq_length} cannot hold [CLS] and [SEP]; use at least 2.")
    self._vocab_file = vocab_file
    self._max_seq_length = max_seq_length
    self._tokens = vocab_lib.read_vocab(vocab_file)
    self._vocab_hash = files.file_sha256(vocab_file)
    self._special = vocab_lib.special_ids(self._tokens)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(self._tokens, tf.string),
            tf.range(len(self._tokens), dtype=tf.int64)),
        default_value=self.unk_id)
    self._bert = tf_text.BertTokenizer(
        table, suffix_indicator=_SUFFIX, token_out_type=tf.int64, unknown_token="[UNK]",
        **vocab_lib.BERT_TOKENIZER_PARAMS)
    self._wordpiece_ids = tf.function(
        self._wordpiece_ids_graph, input_signature=[tf.TensorSpec([None], tf.string)])

  def _wordpiece_ids_graph(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Flat wordpiece ids of all `texts` and the row splits separating the texts."""
    pieces = self._bert.tokenize(texts).merge_dims(1, 2)
    return pieces.flat_values, pieces.row_splits

  @property
  def vocab_file(self) -> str:
    return self._vocab_file

  @property
  def vocab_hash(self) -> str:
    """Hex sha256 of the vocabulary file's bytes, read when the tokenizer was built."""
    return self._vocab_hash

  @property
  def vocab_size(self) -> int:
    return len(self._tokens)

  @property
  def max_seq_length(self) -> int:
    return self._max_seq_length

  @property
  def pad_id(self) -> int:
    return self._special.pad_id

  @property
  def unk_id(self) -> int:
    return self._special.unk_id

  @property
  def cls_id(self) -> int:
    return self._special.cls_id

  @property
  def sep_id(self) -> int:
    return self._special.sep_id

  @property
  def mask_id(self) -> int:
    return self._special.mask_id

  def encode_batch(self, texts: Sequence[str]) -> EncodedBatch:
    """`[CLS] wordpieces... [SEP]` of every text, with one TensorFlow call for the batch."""
    values, splits = self._wordpiece_ids(tf.constant(list(texts), tf.string))
    values, splits = values.numpy().tolist(), splits.numpy().tolist()
    limit = self._max_seq_length - 2
    token_ids, truncated = [], []
    for start, stop in zip(splits[:-1], splits[1:]):
      token_ids.append([self.cls_id] + values[start:min(stop, start + limit)] + [self.sep_id])
      truncated.append(stop - start > limit)
    return EncodedBatch(token_ids=token_ids, truncated=truncated)

  def tokens(self, ids: Sequence[int]) -> list[str]:
    """The token string of each id."""
    result = []
    for token_id in ids:
      token_id = int(token_id)
      if not 0 <= token_id < len(self._tokens):
        raise ValueError(
            f"Token id {token_id} is outside the vocabulary of {len(self._tokens)} tokens "
            f"({self._vocab_file!r}); were the ids made with another vocabulary?")
      result.append(self._tokens[token_id])
    return result

  def decode(self, ids: Sequence[int]) -> str:
    """Space-separated words of `ids`: "##" pieces glued on, special tokens dropped."""
    words = []
    for token in self.tokens(ids):
      if token in vocab_lib.SPECIAL_TOKENS:
        continue
      if token.startswith(_SUFFIX) and words:
        words[-1] += token[len(_SUFFIX):]
      else:
        words.append(token.removeprefix(_SUFFIX))
    return " ".join(words)
