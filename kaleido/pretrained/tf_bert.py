"""TensorFlow BERT checkpoints: Google's TF1 release and TF Model Garden encoders.

Google BERT (github.com/google-research/bert): a directory with bert_config.json,
bert_model.ckpt.{index,data-*} and vocab.txt; variables named bert/embeddings/word_embeddings,
bert/encoder/layer_0/attention/self/query/kernel, cls/predictions/..., the canonical names. Its
"gelu" is the tanh approximation.

TF Model Garden (tf-models-official): an object-based checkpoint written as
`tf.train.Checkpoint(encoder=encoder)`, or with `BertPretrainerV2.checkpoint_items` (adds the
`masked_lm` head), where `encoder` is an `official.nlp.modeling.networks.BertEncoderV2` or the
older functional `BertEncoder`, without an embedding projection (embedding width = hidden size).
Sizes are read from the variable shapes; a bert_config.json beside the checkpoint, when present,
gives the activation (Model Garden's "gelu" is also the tanh approximation, the default).
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import tensorflow as tf

from kaleido import errors
from kaleido.pretrained import bert_checkpoint as canonical

CONFIG_FILE = "bert_config.json"
GOOGLE_PREFIX = "bert_model.ckpt"
ACTIVATIONS = {"gelu": "gelu_approximate", "gelu_new": "gelu_approximate"}
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"

# Model Garden attribute paths -> canonical names.
_EMBEDDINGS = {"_embedding_layer/embeddings": canonical.WORD_EMBEDDINGS,
               "_position_embedding_layer/embeddings": canonical.POSITION_EMBEDDINGS,
               "_type_embedding_layer/embeddings": canonical.TYPE_EMBEDDINGS,
               "_embedding_norm_layer/gamma": f"{canonical.EMBEDDING_NORM}/gamma",
               "_embedding_norm_layer/beta": f"{canonical.EMBEDDING_NORM}/beta",
               "_pooler_layer/kernel": f"{canonical.POOLER}/kernel",
               "_pooler_layer/bias": f"{canonical.POOLER}/bias"}
_BLOCK = {"_attention_layer/_query_dense": canonical.QUERY,
          "_attention_layer/_key_dense": canonical.KEY,
          "_attention_layer/_value_dense": canonical.VALUE,
          "_attention_layer/_output_dense": canonical.ATTENTION_OUTPUT,
          "_attention_layer_norm": canonical.ATTENTION_NORM,
          "_intermediate_dense": canonical.INTERMEDIATE,
          "_output_dense": canonical.OUTPUT,
          "_output_layer_norm": canonical.OUTPUT_NORM}
_MASKED_LM = {"masked_lm/embedding_table": canonical.WORD_EMBEDDINGS,  # when shared, saved here
              "masked_lm/dense/kernel": f"{canonical.MLM_TRANSFORM}/kernel",
              "masked_lm/dense/bias": f"{canonical.MLM_TRANSFORM}/bias",
              "masked_lm/layer_norm/gamma": f"{canonical.MLM_NORM}/gamma",
              "masked_lm/layer_norm/beta": f"{canonical.MLM_NORM}/beta",
              "masked_lm/output_bias.Sbias": canonical.MLM_OUTPUT_BIAS}
# The functional BertEncoder's weighted layers in order: 3 embeddings, LayerNorm, blocks, pooler.
_FUNCTIONAL_EMBEDDINGS = ("_embedding_layer", "_position_embedding_layer",
                          "_type_embedding_layer", "_embedding_norm_layer")
_V2_BLOCK = re.compile(r"^encoder/_transformer_layers/(\d+)/(.+)/(\w+)$")
_FUNCTIONAL_LAYER = re.compile(r"^encoder/layer_with_weights-(\d+)/(.+)$")


def checkpoint_prefix(directory: str) -> str | None:
  """The checkpoint in `directory`: the latest one, else its only (or its Google) checkpoint."""
  latest = tf.train.latest_checkpoint(directory)
  if latest:
    return latest
  prefixes = sorted(path[:-len(".index")] for path in glob.glob(os.path.join(directory,
                                                                             "*.index")))
  if len(prefixes) > 1 and os.path.join(directory, GOOGLE_PREFIX) in prefixes:
    return os.path.join(directory, GOOGLE_PREFIX)
  if len(prefixes) > 1:
    raise errors.KaleidoError(
        f"{directory!r} holds {len(prefixes)} checkpoints; pass the prefix of one, e.g. "
        f"{prefixes[0]!r}.")
  return prefixes[0] if prefixes else None


def read(prefix: str) -> canonical.BertCheckpoint:
  """The Google TF1 or Model Garden BERT checkpoint with prefix `prefix`."""
  names = [name for name, _ in tf.train.list_variables(prefix)]
  if any(name.startswith("bert/embeddings/") for name in names):
    return _read_google(prefix)
  if any(name.startswith("encoder/") and name.endswith(_VALUE) for name in names):
    return _read_model_garden(prefix, names)
  raise errors.KaleidoError(
      f"The checkpoint {prefix!r} holds neither Google BERT variables (bert/embeddings/...) nor "
      "a Model Garden encoder saved as tf.train.Checkpoint(encoder=...).")


def _read_google(prefix: str) -> canonical.BertCheckpoint:
  directory = os.path.dirname(prefix)
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise errors.KaleidoError(f"The Google BERT checkpoint {prefix!r} has no {CONFIG_FILE} "
                              "beside it; copy the one released with it there.")
  sizes = canonical.sizes_from_config(canonical.read_json_file(config_path), ACTIVATIONS,
                                      config_path)
  reader = tf.train.load_checkpoint(prefix)
  weights = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
             if name.startswith(("bert/", "cls/predictions/"))}
  return canonical.make_checkpoint(sizes, weights, canonical.vocab_file_in(directory),
                                   f"Google BERT checkpoint {prefix!r}")


def _model_garden_names(names: list[str]) -> dict[str, str]:
  """Checkpoint key -> canonical name of every encoder and MLM variable in `names`."""
  paths = {name[:-len(_VALUE)]: name for name in names if name.endswith(_VALUE)}
  functional = _functional_paths(paths)
  result = {}
  for path, key in paths.items():
    path = functional.get(path, path)
    if path.startswith("encoder/") and path[len("encoder/"):] in _EMBEDDINGS:
      result[key] = _EMBEDDINGS[path[len("encoder/"):]]
    elif path in _MASKED_LM:
      result[key] = _MASKED_LM[path]
    elif (match := _V2_BLOCK.match(path)) and match.group(2) in _BLOCK:
      index, part, leaf = match.groups()
      result[key] = f"{canonical.layer_name(int(index), _BLOCK[part])}/{leaf}"
  return result


def _functional_paths(paths: dict[str, str]) -> dict[str, str]:
  """The functional BertEncoder's `layer_with_weights-k` paths rewritten as BertEncoderV2's."""
  layers: dict[int, list[str]] = {}
  for path in paths:
    if match := _FUNCTIONAL_LAYER.match(path):
      layers.setdefault(int(match.group(1)), []).append(match.group(2))
  blocks = sorted(k for k, rests in layers.items()
                  if any(rest.startswith("_attention_layer/") for rest in rests))
  first_block = len(_FUNCTIONAL_EMBEDDINGS)
  if blocks and blocks != list(range(first_block, first_block + len(blocks))):
    raise errors.KaleidoError(
        "The Model Garden BertEncoder checkpoint has an embedding projection or an unknown "
        "layer order; only encoders with embedding width = hidden size are supported.")
  renamed = {}
  for k, rests in layers.items():
    if k < first_block:
      attribute = _FUNCTIONAL_EMBEDDINGS[k]
    elif k in blocks:
      attribute = f"_transformer_layers/{k - first_block}"
    else:
      attribute = "_pooler_layer"
    for rest in rests:
      renamed[f"encoder/layer_with_weights-{k}/{rest}"] = f"encoder/{attribute}/{rest}"
  return renamed


def _flatten_heads(name: str, value: np.ndarray) -> np.ndarray:
  """MultiHeadAttention's (H, heads, head_dim) / (heads, head_dim) / (heads, head_dim, H)
  arrays -> the canonical (H, H) / (H,) / (H, H)."""
  if name.endswith(("query/kernel", "key/kernel", "value/kernel")):
    return value.reshape(value.shape[0], -1)
  if name.endswith(("query/bias", "key/bias", "value/bias")):
    return value.reshape(-1)
  if name.endswith(f"{canonical.ATTENTION_OUTPUT}/kernel"):
    return value.reshape(-1, value.shape[-1])
  return value


def _read_model_garden(prefix: str, names: list[str]) -> canonical.BertCheckpoint:
  reader = tf.train.load_checkpoint(prefix)
  raw = {target: reader.get_tensor(key) for key, target in _model_garden_names(names).items()}
  source = f"Model Garden BERT checkpoint {prefix!r}"
  query_name = f"{canonical.layer_name(0, canonical.QUERY)}/kernel"
  intermediate_name = f"{canonical.layer_name(0, canonical.INTERMEDIATE)}/kernel"
  needed = (canonical.WORD_EMBEDDINGS, canonical.POSITION_EMBEDDINGS, canonical.TYPE_EMBEDDINGS,
            query_name, intermediate_name)
  missing = [name for name in needed if name not in raw]
  if missing or raw[query_name].ndim != 3:
    raise errors.KaleidoError(f"{source} has no BertEncoder under `encoder/` (nothing found for "
                              f"{missing[0] if missing else query_name}).")
  word, query = raw[canonical.WORD_EMBEDDINGS], raw[query_name]
  if word.shape[1] != query.shape[0]:
    raise errors.KaleidoError(
        f"{source} has embedding width {word.shape[1]} and hidden size {query.shape[0]}; "
        "encoders with an embedding projection are not supported.")
  directory = os.path.dirname(prefix)
  config_path = os.path.join(directory, CONFIG_FILE)
  hidden_act = "gelu"
  if os.path.isfile(config_path):
    hidden_act = str(canonical.read_json_file(config_path).get("hidden_act", hidden_act))
  sizes = canonical.BertSizes(
      vocab_size=word.shape[0], hidden_size=word.shape[1],
      num_layers=len([name for name in raw if name.endswith(f"{canonical.QUERY}/kernel")]),
      num_heads=query.shape[1], intermediate_size=raw[intermediate_name].shape[1],
      max_position_embeddings=raw[canonical.POSITION_EMBEDDINGS].shape[0],
      type_vocab_size=raw[canonical.TYPE_EMBEDDINGS].shape[0],
      hidden_act=ACTIVATIONS.get(hidden_act, hidden_act))
  weights = {name: _flatten_heads(name, value) for name, value in raw.items()}
  return canonical.make_checkpoint(sizes, weights, canonical.vocab_file_in(directory), source)
