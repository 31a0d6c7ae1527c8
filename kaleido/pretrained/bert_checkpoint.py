"""The one in-memory form of a BERT checkpoint, whatever file format it came from.

Weights carry Google BERT's TF1 variable names and layout: dense kernels are (in, out), the
attention projections plain (H, H) matrices with the heads side by side in the columns, embedding
tables (rows, H), LayerNorm gamma/beta. A checkpoint holds the embeddings and every encoder layer;
the pooler and the MLM transform (dense, LayerNorm, output bias) are optional, each all or nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping

import numpy as np

from kaleido import config
from kaleido import errors

VOCAB_FILE = "vocab.txt"

WORD_EMBEDDINGS = "bert/embeddings/word_embeddings"
POSITION_EMBEDDINGS = "bert/embeddings/position_embeddings"
TYPE_EMBEDDINGS = "bert/embeddings/token_type_embeddings"
EMBEDDING_NORM = "bert/embeddings/LayerNorm"
POOLER = "bert/pooler/dense"
MLM_TRANSFORM = "cls/predictions/transform/dense"
MLM_NORM = "cls/predictions/transform/LayerNorm"
MLM_OUTPUT_BIAS = "cls/predictions/output_bias"

# Parts of encoder layer i, below f"bert/encoder/layer_{i}/".
QUERY = "attention/self/query"
KEY = "attention/self/key"
VALUE = "attention/self/value"
ATTENTION_OUTPUT = "attention/output/dense"
ATTENTION_NORM = "attention/output/LayerNorm"
INTERMEDIATE = "intermediate/dense"
OUTPUT = "output/dense"
OUTPUT_NORM = "output/LayerNorm"

_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


def layer_name(index: int, part: str) -> str:
  """The canonical prefix of `part` (e.g. QUERY) in encoder layer `index`."""
  return f"bert/encoder/layer_{index}/{part}"


@dataclasses.dataclass(frozen=True)
class BertSizes:
  """Sizes of a BERT encoder; `hidden_act` is one of config.HIDDEN_ACTS."""
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int
  hidden_act: str

  def describe(self) -> str:
    return (f"{self.num_layers} layers, hidden {self.hidden_size}, {self.num_heads} heads, "
            f"intermediate {self.intermediate_size}, vocabulary {self.vocab_size}, "
            f"{self.max_position_embeddings} positions, {self.type_vocab_size} types, "
            f"{self.hidden_act}")


@dataclasses.dataclass(frozen=True)
class BertCheckpoint:
  """A BERT checkpoint read into memory: sizes, float32 weights by canonical name, the path of
  its vocabulary file (None when it has none) and a description of where it came from."""
  sizes: BertSizes
  weights: Mapping[str, np.ndarray]
  vocab_file: str | None
  source: str

  @property
  def has_pooler(self) -> bool:
    return f"{POOLER}/kernel" in self.weights

  @property
  def has_mlm_head(self) -> bool:
    return MLM_OUTPUT_BIAS in self.weights

  def describe(self) -> str:
    parts = [self.sizes.describe(),
             f"{sum(value.size for value in self.weights.values()) / 1e6:.1f}M weights",
             "pooler" if self.has_pooler else "no pooler",
             "MLM head" if self.has_mlm_head else "no MLM head",
             f"vocab.txt {self.vocab_file}" if self.vocab_file else "no vocab.txt"]
    return f"{self.source}: {', '.join(parts)}"


def _dense(prefix: str, inputs: int, outputs: int) -> dict[str, tuple[int, ...]]:
  return {f"{prefix}/kernel": (inputs, outputs), f"{prefix}/bias": (outputs,)}


def _norm(prefix: str, size: int) -> dict[str, tuple[int, ...]]:
  return {f"{prefix}/gamma": (size,), f"{prefix}/beta": (size,)}


def required_shapes(sizes: BertSizes) -> dict[str, tuple[int, ...]]:
  """Canonical name -> shape of every weight a checkpoint must hold."""
  hidden = sizes.hidden_size
  shapes = {WORD_EMBEDDINGS: (sizes.vocab_size, hidden),
            POSITION_EMBEDDINGS: (sizes.max_position_embeddings, hidden),
            TYPE_EMBEDDINGS: (sizes.type_vocab_size, hidden),
            **_norm(EMBEDDING_NORM, hidden)}
  for i in range(sizes.num_layers):
    for part in (QUERY, KEY, VALUE, ATTENTION_OUTPUT):
      shapes.update(_dense(layer_name(i, part), hidden, hidden))
    shapes.update(_dense(layer_name(i, INTERMEDIATE), hidden, sizes.intermediate_size))
    shapes.update(_dense(layer_name(i, OUTPUT), sizes.intermediate_size, hidden))
    shapes.update(_norm(layer_name(i, ATTENTION_NORM), hidden))
    shapes.update(_norm(layer_name(i, OUTPUT_NORM), hidden))
  return shapes


def optional_shapes(sizes: BertSizes) -> dict[str, dict[str, tuple[int, ...]]]:
  """The optional parts: part name -> (canonical name -> shape), each part all or nothing."""
  hidden = sizes.hidden_size
  return {"pooler": _dense(POOLER, hidden, hidden),
          "MLM head": {**_dense(MLM_TRANSFORM, hidden, hidden), **_norm(MLM_NORM, hidden),
                       MLM_OUTPUT_BIAS: (sizes.vocab_size,)}}


def make_checkpoint(sizes: BertSizes, weights: Mapping[str, np.ndarray], vocab_file: str | None,
                    source: str) -> BertCheckpoint:
  """Checks `weights` (canonical names; other names such as optimizer slots are dropped) against
  `sizes` and returns the checkpoint; a KaleidoError names the first problem."""
  if sizes.hidden_act not in config.HIDDEN_ACTS:
    raise errors.KaleidoError(
        f"{source} uses the activation {sizes.hidden_act!r}; Kaleido-BERT supports "
        f"{' and '.join(config.HIDDEN_ACTS)} only.")
  if sizes.hidden_size % sizes.num_heads:
    raise errors.KaleidoError(f"{source} has hidden size {sizes.hidden_size}, which "
                              f"{sizes.num_heads} attention heads do not divide.")
  extra_layers = sorted({int(match.group(1)) for name in weights
                         if (match := _LAYER.match(name))} - set(range(sizes.num_layers)))
  if extra_layers:
    raise errors.KaleidoError(
        f"{source} holds encoder layer {extra_layers[0]} but its config has "
        f"{sizes.num_layers} layers; the config does not belong to these weights.")
  required = required_shapes(sizes)
  missing = [name for name in required if name not in weights]
  if missing:
    raise errors.KaleidoError(
        f"{source} lacks the weight {missing[0]} ({len(missing)} of {len(required)} required "
        "weights missing), so it is not a complete BERT checkpoint.")
  expected = dict(required)
  for part, shapes in optional_shapes(sizes).items():
    present = [name for name in shapes if name in weights]
    if present and len(present) < len(shapes):
      absent = next(name for name in shapes if name not in weights)
      raise errors.KaleidoError(f"{source} has part of the {part} but lacks {absent}.")
    if present:
      expected.update(shapes)
  kept = {}
  for name, shape in expected.items():
    value = np.asarray(weights[name])
    if value.shape != shape:
      raise errors.KaleidoError(
          f"{source}: {name} has shape {value.shape}, but its sizes ({sizes.describe()}) "
          f"need {shape}.")
    kept[name] = value.astype(np.float32, copy=False)
  return BertCheckpoint(sizes=sizes, weights=kept, vocab_file=vocab_file, source=source)


def sizes_from_config(payload: Mapping, activations: Mapping[str, str], path: str) -> BertSizes:
  """BertSizes from a Google `bert_config.json` or Hugging Face `config.json` payload;
  `activations` maps the file's hidden_act names to config.HIDDEN_ACTS."""
  try:
    hidden_act = str(payload.get("hidden_act", "gelu"))
    return BertSizes(
        vocab_size=int(payload["vocab_size"]), hidden_size=int(payload["hidden_size"]),
        num_layers=int(payload["num_hidden_layers"]),
        num_heads=int(payload["num_attention_heads"]),
        intermediate_size=int(payload["intermediate_size"]),
        max_position_embeddings=int(payload.get("max_position_embeddings", 512)),
        type_vocab_size=int(payload.get("type_vocab_size", 2)),
        hidden_act=activations.get(hidden_act, hidden_act))
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    raise errors.KaleidoError(
        f"{path!r} is not a BERT config: it lacks or mistypes {error}.") from error


def read_json_file(path: str) -> dict:
  """A JSON object from `path`; a KaleidoError when it is not one."""
  try:
    with open(path, encoding="utf-8") as f:
      payload = json.load(f)
  except (OSError, ValueError) as error:
    raise errors.KaleidoError(f"{path!r} cannot be read as JSON ({error}).") from error
  if not isinstance(payload, dict):
    raise errors.KaleidoError(f"{path!r} holds JSON but not an object of settings.")
  return payload


def vocab_file_in(directory: str) -> str | None:
  """`directory`/vocab.txt when it exists."""
  path = os.path.join(directory, VOCAB_FILE)
  return path if os.path.isfile(path) else None
