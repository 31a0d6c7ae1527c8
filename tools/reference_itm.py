r"""Issue #34's reference: image-text matching learned by a BERT checkpoint's layers in Model
Garden's BertEncoderV2, outside kaleido/model, on the same patch features as a kaleido run.

  python tools/reference_itm.py --run=runs/m34_ours --steps=1000 --output_json=runs/ref.json

The encoder is `official.nlp.modeling.networks.BertEncoderV2` with dense inputs: the text
through the checkpoint's word embeddings, each of the 55 patches as one plain projection of
[feature, box] that enters through the checkpoint's own position embeddings, type row 1 and
embedding LayerNorm (kaleido's encoder gives the patches new type rows, a box projection and a
LayerNorm of their own). The weights are read from a Hugging Face folder (model.safetensors) by
this file's own mapping. ITM is a Dense(2) on the pooled [CLS] state; its margin is
logit(matched) - logit(unmatched).

Pairs (--negatives): `pairs`, each text with its own image or, with probability 1/2, another
product's (the paper's pre-training draw), softmax cross-entropy; or `groups`, each text with
its image and --group_size other products' images of the batch, and each image with its text
and as many other texts, a softmax over each group's margins (kaleido's
--negatives_per_positive with --itm_loss=listwise). The texts (descriptions) and patch features
are those of `--run`: its frozen patch CNN's features of the prepared training and development
folders. Held-out: every development text with its own image and with one random other
product's image (fixed draws), the accuracy of margin > 0 and the AUC of the margins; the
curve so far is written (atomically) to --output_json after every score, "finished" once the
last step is scored.
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags
import numpy as np
from official.nlp import optimization
from official.nlp.modeling import networks
from safetensors import numpy as safetensors_numpy
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.evaluation import model as evaluation_model
from kaleido.metrics import classification
from kaleido.pretrained import bert_init
from kaleido.utils import cli
from kaleido.utils import files
from kaleido.utils import progress as progress_lib

_RUN = flags.DEFINE_string("run", None, "A kaleido --model_dir whose data and patch CNN to use.")
_TRAIN_DATA = flags.DEFINE_string("train_data", "",
                                  "Prepared training folder (default: the run's).")
_EVAL_DATA = flags.DEFINE_string("eval_data", "", "Prepared held-out folder (default: the run's).")
_BERT_DIR = flags.DEFINE_string("bert_dir", "all-MiniLM-L6-v2",
                                "A Hugging Face BERT folder, or all-MiniLM-L6-v2.")
_NEGATIVES = flags.DEFINE_enum("negatives", "pairs", ["pairs", "groups"], "How ITM is trained.")
_GROUP_SIZE = flags.DEFINE_integer("group_size", 1, "Negatives per query with --negatives=groups.")
_STEPS = flags.DEFINE_integer("steps", 1000, "Training steps.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Texts per step.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Peak rate of the new weights.")
_PRETRAINED_MULTIPLIER = flags.DEFINE_float("pretrained_lr_multiplier", 0.1,
                                            "The checkpoint's weights' rate, times the peak.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up, then linear decay.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 100, "Steps between held-out scores.")
_SEED = flags.DEFINE_integer("seed", 0, "Initial weights, batches, negatives and held-out draws.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Where the curve is written (JSON).")

PATCH_TYPE = 1


def load_huggingface_bert(encoder, weights: dict[str, np.ndarray]) -> int:
  """Assigns Hugging Face BertModel `weights` to a built BertEncoderV2; the count assigned.
  Every encoder variable must be covered (a KeyError names the one missing)."""
  # pylint: disable=protected-access  (Model Garden's layers keep their sublayers private)
  weights = {name.removeprefix("bert."): value for name, value in weights.items()}
  hidden = encoder.get_config()["hidden_size"]
  heads = encoder.get_config()["num_attention_heads"]
  by_head = lambda value: value.T.reshape(hidden, heads, hidden // heads)
  targets = [
      (encoder.get_embedding_layer().embeddings, "embeddings.word_embeddings.weight", None),
      (encoder._position_embedding_layer.weights[0],
       "embeddings.position_embeddings.weight", None),
      (encoder._type_embedding_layer.embeddings,
       "embeddings.token_type_embeddings.weight", None)]
  norms = [(encoder._embedding_norm_layer, "embeddings.LayerNorm")]
  denses = [(encoder.pooler_layer, "pooler.dense", np.transpose)]
  for i, block in enumerate(encoder.transformer_layers):
    prefix = f"encoder.layer.{i}"
    attention = block._attention_layer
    denses += [(attention._query_dense, f"{prefix}.attention.self.query", by_head),
               (attention._key_dense, f"{prefix}.attention.self.key", by_head),
               (attention._value_dense, f"{prefix}.attention.self.value", by_head),
               (attention._output_dense, f"{prefix}.attention.output.dense",
                lambda value: value.T.reshape(heads, hidden // heads, hidden)),
               (block._intermediate_dense, f"{prefix}.intermediate.dense", np.transpose),
               (block._output_dense, f"{prefix}.output.dense", np.transpose)]
    norms += [(block._attention_layer_norm, f"{prefix}.attention.output.LayerNorm"),
              (block._output_layer_norm, f"{prefix}.output.LayerNorm")]
  for layer, name, reshape in denses:
    kernel, bias = layer.kernel, layer.bias
    targets += [(kernel, f"{name}.weight", reshape),
                (bias, f"{name}.bias", lambda value, shape=tuple(bias.shape): value.reshape(shape))]
  for layer, name in norms:
    targets += [(layer.gamma, f"{name}.weight", None), (layer.beta, f"{name}.bias", None)]
  for variable, name, reshape in targets:
    value = weights[name]
    variable.assign(reshape(value) if reshape else value)
  covered = {variable.ref() for variable, _, _ in targets}
  missing = [variable.name for variable in encoder.weights if variable.ref() not in covered]
  if missing:
    raise KeyError(f"BertEncoderV2 variables without a checkpoint weight: {missing}")
  return len(targets)


def build_reference(bert_dir: str, feature_size: int, seed: int):
  """(encoder, patch projection, ITM head) with the checkpoint's weights in the encoder."""
  tf_keras.utils.set_random_seed(seed)
  config = files.read_json(os.path.join(bert_dir, "config.json"))
  exact = config.get("hidden_act", "gelu") == "gelu"
  encoder = networks.BertEncoderV2(
      vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
      num_layers=config["num_hidden_layers"], num_attention_heads=config["num_attention_heads"],
      max_sequence_length=config["max_position_embeddings"],
      type_vocab_size=config["type_vocab_size"], inner_dim=config["intermediate_size"],
      inner_activation=lambda x: tf_keras.activations.gelu(x, approximate=not exact),
      with_dense_inputs=True)
  hidden = config["hidden_size"]
  encoder({"input_word_ids": tf.zeros([1, 2], tf.int32), "input_mask": tf.ones([1, 2], tf.int32),
           "input_type_ids": tf.zeros([1, 2], tf.int32),
           "dense_inputs": tf.zeros([1, 1, hidden]), "dense_mask": tf.ones([1, 1], tf.int32),
           "dense_type_ids": tf.ones([1, 1], tf.int32)})
  load_huggingface_bert(encoder, safetensors_numpy.load_file(
      os.path.join(bert_dir, "model.safetensors")))
  init = lambda: tf_keras.initializers.TruncatedNormal(stddev=0.02)
  projection = tf_keras.layers.Dense(hidden, kernel_initializer=init(), name="patch_projection")
  projection.build([None, None, feature_size + 5])
  itm = tf_keras.layers.Dense(2, kernel_initializer=init(), name="itm")
  itm.build([None, hidden])
  return encoder, projection, itm


def margins(model, word_ids, input_mask, features, boxes, training: bool):
  """(n,) ITM margins of the n (text, image) rows."""
  encoder, projection, itm = model
  patches = projection(tf.concat([features, boxes], axis=-1))
  patch_mask = tf.ones(tf.shape(patches)[:2], tf.int32)
  outputs = encoder({"input_word_ids": word_ids, "input_mask": input_mask,
                     "input_type_ids": tf.zeros_like(word_ids),
                     "dense_inputs": patches, "dense_mask": patch_mask,
                     "dense_type_ids": patch_mask * PATCH_TYPE}, training=training)
  logits = itm(outputs["pooled_output"])
  return logits[:, 1] - logits[:, 0]


def pair_draws(product_ids: np.ndarray, rows: np.ndarray, rng: np.random.Generator,
               count: int) -> np.ndarray:
  """(len(rows), count) indices into `rows` of other products than each row's (fewer distinct
  products than count + 1 in `rows` is a ValueError)."""
  products = product_ids[rows]
  draws = np.empty((len(rows), count), np.int64)
  for k, product in enumerate(products):
    others = np.flatnonzero(products != product)
    if len(others) < count:
      raise ValueError(f"a batch needs {count} other products per row; it has {len(others)}")
    draws[k] = rng.choice(others, count, replace=False)
  return draws


def training_rows(data, rows: np.ndarray, rng: np.random.Generator, negatives: str,
                  group_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(text rows, image rows, labels or group positions) of one step's pairs. `pairs`: labels 1
  (own image) or 0 (another product's, probability 1/2). `groups`: text-query groups
  [text i: image i, K others] then image-query groups [image i: text i, K others], flattened;
  the third array is the number of pairs per group (the positive first)."""
  if negatives == "pairs":
    other = rows[pair_draws(data["product_ids"], rows, rng, 1)[:, 0]]
    labels = (rng.random(len(rows)) >= 0.5).astype(np.int64)
    return rows, np.where(labels == 1, rows, other), labels
  others = rows[pair_draws(data["product_ids"], rows, rng, group_size)]
  own = np.repeat(rows[:, None], group_size + 1, axis=1)
  candidates = np.concatenate([rows[:, None], others], axis=1)
  texts = np.concatenate([own.ravel(), candidates.ravel()])
  images = np.concatenate([candidates.ravel(), own.ravel()])
  return texts, images, np.full(2 * len(rows), group_size + 1)


def heldout_pairs(product_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every held-out text with its own image and with one other product's image (fixed draws)."""
  rng = np.random.default_rng(seed + 1)
  rows = np.arange(len(product_ids))
  other = pair_draws(product_ids, rows, rng, 1)[:, 0]
  return (np.concatenate([rows, rows]), np.concatenate([rows, other]),
          np.concatenate([np.ones_like(rows), np.zeros_like(rows)]))


def _folder_arrays(run_dir: str, folder: str) -> dict[str, np.ndarray]:
  """Texts (descriptions), boxes, product ids and the run's patch features of `folder`."""
  evaluation = evaluation_model.load(run_dir, folder, batch_size=64, retrieval_text="description")
  examples = evaluation.examples
  return {"word_ids": examples.word_ids, "input_mask": examples.input_mask,
          "boxes": examples.patch_boxes, "product_ids": examples.product_ids,
          "features": evaluation.patch_features(np.arange(len(examples.product_ids)))}


def _trimmed(data: dict[str, np.ndarray], texts: np.ndarray, images: np.ndarray):
  """The rows' encoder inputs, the text cut to the longest real one."""
  length = int(data["input_mask"][texts].sum(axis=1).max())
  return (data["word_ids"][texts, :length], data["input_mask"][texts, :length],
          data["features"][images], data["boxes"][images])


def train(model, train_data, eval_data, settings: dict, log=print,
          on_point=lambda curve: None) -> list[dict]:
  """Trains the reference `model` (build_reference's); the held-out curve [{step, train_loss,
  accuracy, auc}], step 0 before training, also given to `on_point` after every score."""
  encoder, projection, itm = model
  steps = settings["steps"]

  def optimizer(rate: float):
    decay = tf_keras.optimizers.schedules.PolynomialDecay(rate, steps, 0.0)
    schedule = optimization.WarmUp(rate, decay, settings["warmup_steps"])
    return tf_keras.optimizers.AdamW(schedule, weight_decay=1e-4, epsilon=1e-6)

  pretrained = encoder.trainable_variables
  new = projection.trainable_variables + itm.trainable_variables
  optimizers = (optimizer(settings["learning_rate"] * settings["pretrained_lr_multiplier"]),
                optimizer(settings["learning_rate"]))
  for one, variables in zip(optimizers, (pretrained, new)):
    one.exclude_from_weight_decay(var_names=["layer_norm", "bias"])
    one.build(variables)
  groups = settings["negatives"] == "groups"

  @tf.function(reduce_retracing=True)
  def step(word_ids, input_mask, features, boxes, targets):
    with tf.GradientTape() as tape:
      scores = margins(model, word_ids, input_mask, features, boxes, training=True)
      if groups:
        grouped = tf.reshape(scores, [-1, settings["group_size"] + 1])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros(tf.shape(grouped)[0], tf.int64), grouped))
      else:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.cast(targets, tf.float32), scores))
    gradients = tape.gradient(loss, pretrained + new)
    optimizers[0].apply_gradients(zip(gradients[:len(pretrained)], pretrained))
    optimizers[1].apply_gradients(zip(gradients[len(pretrained):], new))
    return loss

  score = tf.function(reduce_retracing=True)(
      lambda *inputs: margins(model, *inputs, training=False))
  texts, images, labels = heldout_pairs(eval_data["product_ids"], settings["seed"])

  def heldout(step_number: int, loss: float) -> dict:
    scores = np.concatenate([
        score(*_trimmed(eval_data, texts[start:start + 128], images[start:start + 128])).numpy()
        for start in range(0, len(texts), 128)])
    point = {"step": step_number, "train_loss": loss,
             "accuracy": float(((scores > 0) == (labels == 1)).mean()),
             "auc": classification.pairwise_auc(scores[labels == 1], scores[labels == 0])}
    log(f"step {step_number}: held-out ITM accuracy {point['accuracy']:.3f}, AUC "
        f"{point['auc']:.3f}, training loss {loss:.4f}")
    curve.append(point)
    on_point(curve)

  rng = np.random.default_rng(settings["seed"])
  num_train = len(train_data["product_ids"])
  curve = []
  heldout(0, float("nan"))
  progress = progress_lib.Progress(steps, "reference ITM", unit="steps")
  losses = []
  for step_number in range(1, steps + 1):
    rows = rng.choice(num_train, settings["batch_size"], replace=False)
    pair_texts, pair_images, targets = training_rows(
        train_data, rows, rng, settings["negatives"], settings["group_size"])
    losses.append(float(step(*_trimmed(train_data, pair_texts, pair_images),
                             tf.constant(targets))))
    progress.update(postfix=f"loss {losses[-1]:.3f}")
    if step_number % settings["eval_every"] == 0 or step_number == steps:
      heldout(step_number, float(np.mean(losses)))
      losses = []
  progress.close()
  return curve


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  del argv
  bert_dir = bert_init.resolve_bert_init(_BERT_DIR.value)
  settings = {"negatives": _NEGATIVES.value, "group_size": _GROUP_SIZE.value,
              "steps": _STEPS.value, "batch_size": _BATCH_SIZE.value,
              "learning_rate": _LEARNING_RATE.value,
              "pretrained_lr_multiplier": _PRETRAINED_MULTIPLIER.value,
              "warmup_steps": _WARMUP_STEPS.value, "eval_every": _EVAL_EVERY.value,
              "seed": _SEED.value}
  started = time.time()
  run = config_lib.load(_RUN.value)
  train_data = _folder_arrays(_RUN.value, _TRAIN_DATA.value or run.data.train_data)
  eval_data = _folder_arrays(_RUN.value, _EVAL_DATA.value or run.data.eval_data)
  model = build_reference(bert_dir, train_data["features"].shape[-1], settings["seed"])

  def write(curve: list[dict]) -> None:
    files.write_json(_OUTPUT_JSON.value, {
        "command": [sys.executable] + sys.argv, "run": _RUN.value, "bert_dir": bert_dir,
        "settings": settings, "seconds": round(time.time() - started, 1),
        "finished": curve[-1]["step"] == settings["steps"], "curve": curve})

  train(model, train_data, eval_data, settings, on_point=write)
  print(f"Wrote {_OUTPUT_JSON.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "output_json"])
  cli.run(main)
