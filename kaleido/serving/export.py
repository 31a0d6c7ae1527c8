"""A trained run -> a SavedModel that takes raw image bytes and text (TF Serving, any runtime).

Signatures by the run's task, all batched (kaleido.serving.preprocessing does every step in the
graph; loading needs TensorFlow and tensorflow_text only):
- `embed_image` (every run): image_bytes -> patch_features (B, 55, F), patch_boxes (B, 55, 5),
  crop_box (B, 4) normalised [x1, y1, x2, y2], foreground_found (B,);
- `score` (pre-training, retrieval): image_bytes, text -> itm_logit_margin (the ranking score,
  never saturated; -inf for an empty text), matched_probability and empty_text (B,) bool (the
  texts that show no character, kaleido.utils.text_validity's rule);
- `classify` (category, subcategory): image_bytes, text -> probabilities (B, C), top_class,
  top_class_name and empty_text (the image alone then decides);
- `caption` (captioning): image_bytes -> caption strings, greedy; `caption_beam`: image_bytes,
  beam_size -> the same by beam search. Decoded with the key/value cache
  (kaleido.model.caption_decoder) or, for one-shot runs, the argmax of one pass over
  `[CLS] [MASK] ...` (no beams).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.evaluation import runs as eval_runs
from kaleido.model import caption_decoder
from kaleido.model import heads as heads_lib
from kaleido.model import kaleido_bert
from kaleido.patches import generator
from kaleido.records import prepare
from kaleido.serving import preprocessing
from kaleido.text import vocab as vocab_lib
from kaleido.utils import files
from kaleido.utils import restoring

EXPORT_INFO = "kaleido_export.json"
_IMAGES = tf.TensorSpec([None], tf.string, name="image_bytes")
_TEXTS = tf.TensorSpec([None], tf.string, name="text")


def patch_config_of(run: config_lib.ExperimentConfig) -> generator.PatchConfig:
  """The patch generator settings the run's training data was prepared with (its folder's
  prepare_settings.json), or the defaults at the run's patch size when that folder is gone."""
  config = prepare.folder_patch_config(run.data.train_data)
  if config is None:
    print(f"Note: {os.path.join(run.data.train_data, prepare.SETTINGS_NAME)} is not there; the "
          f"export crops with the default patch generator settings at {run.data.patch_size}-pixel "
          "patches.", file=sys.stderr)
    return generator.PatchConfig(patch_size=run.data.patch_size)
  return config


class KaleidoServingModule(tf.Module):
  """The run's model with its preprocessing, as tf.functions of raw inputs."""

  def __init__(self, run: config_lib.ExperimentConfig, model: tf_keras.Model, vocab_file: str,
               patch_config: generator.PatchConfig):
    super().__init__()
    self.model = model
    self.text_encoder = preprocessing.TextEncoder(vocab_file, run.model.max_seq_length)
    self._patch = patch_config
    self._run = run
    tokens = vocab_lib.read_vocab(vocab_file)
    self._vocab = tf.constant(tokens)
    self._special = vocab_lib.special_ids(tokens)
    self._dropped_ids = tf.constant([tokens.index(token) for token in vocab_lib.SPECIAL_TOKENS])
    self._label_names = tf.constant(list(run.data.label_names) or [""])
    if isinstance(model, kaleido_bert.KaleidoCaptioner):
      ids = self._special
      self.decoder = caption_decoder.CachedDecoder(model, ids.cls_id, ids.sep_id, ids.pad_id,
                                                   run.model.kaleido_levels)
    for name, (function, signature) in self._task_functions().items():
      setattr(self, name, tf.function(function, input_signature=signature))

  def _image_side(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
    inputs = preprocessing.batch_image_inputs(image_bytes, self._patch)
    inputs["patch_features"] = self.model.backbone.patch_embedder(inputs.pop("patches"),
                                                                  training=False)
    return inputs

  def _pooled(self, image_bytes: tf.Tensor, text: tf.Tensor) -> tf.Tensor:
    image = self._image_side(image_bytes)
    inputs = {**self.text_encoder(text), "patch_features": image["patch_features"],
              "patch_boxes": image["patch_boxes"]}
    return self.model.backbone(inputs, training=False)["pooled_output"]

  def _embed_image(self, image_bytes):
    image = self._image_side(image_bytes)
    return {"patch_features": tf.cast(image["patch_features"], tf.float32),
            "patch_boxes": image["patch_boxes"], "crop_box": image["crop_box"],
            "foreground_found": image["foreground_found"]}

  def _score(self, image_bytes, text):
    margin = tf.cast(heads_lib.itm_margin(self.model.itm(self._pooled(image_bytes, text))),
                     tf.float32)
    empty = preprocessing.empty_texts(text)
    margin = tf.where(empty, tf.constant(-float("inf")), margin)  # an empty text matches nothing
    return {"itm_logit_margin": margin, "matched_probability": tf.sigmoid(margin),
            "empty_text": empty}

  def _classify(self, image_bytes, text):
    logits = tf.cast(self.model.classifier(self._pooled(image_bytes, text)), tf.float32)
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {"probabilities": tf.nn.softmax(logits), "top_class": top,
            "top_class_name": tf.gather(self._label_names, top),
            "empty_text": preprocessing.empty_texts(text)}

  def _caption_tokens(self, image_bytes: tf.Tensor, beam_size: tf.Tensor) -> tf.Tensor:
    image = self._image_side(image_bytes)
    features, boxes = image["patch_features"], image["patch_boxes"]
    if self._run.task.finetune.caption_mode == kaleido_bert.ONE_SHOT:
      ids = self._special
      length = self._run.model.max_seq_length
      rows = tf.shape(features)[0]
      word_ids = tf.concat([tf.fill([rows, 1], ids.cls_id),
                            tf.fill([rows, length - 1], ids.mask_id)], axis=1)
      sequence = self.model.backbone(
          {"input_word_ids": word_ids, "input_mask": tf.ones_like(word_ids),
           "patch_features": features, "patch_boxes": boxes}, training=False)["sequence_output"]
      positions = tf.broadcast_to(tf.range(length)[tf.newaxis], tf.shape(word_ids))
      tokens = tf.argmax(self.model.masked_lm(sequence, masked_positions=positions), axis=-1,
                         output_type=tf.int32)
      return tf.concat([word_ids[:, :1], tokens[:, 1:]], axis=1)
    return self.decoder.beam_search(features, boxes, tf.maximum(beam_size, 1))

  def _caption_strings(self, tokens: tf.Tensor) -> tf.Tensor:
    """(B, L) `[CLS] caption [SEP] ...` ids -> caption strings as KaleidoTokenizer.decode."""
    ids = self._special
    after_sep = tf.cumsum(tf.cast(tf.equal(tokens, ids.sep_id), tf.int32), axis=1) > 0
    special = tf.reduce_any(tf.equal(tokens[..., tf.newaxis], self._dropped_ids), axis=-1)
    keep = tf.logical_not(tf.logical_or(after_sep, special))
    pieces = tf.ragged.boolean_mask(tf.gather(self._vocab, tokens), keep)
    joined = tf.strings.reduce_join(pieces, axis=1, separator=" ")
    glued = tf.strings.regex_replace(joined, " ##", "")
    return tf.strings.regex_replace(glued, "^##", "")

  def _caption(self, image_bytes):
    return {"caption": self._caption_strings(self._caption_tokens(image_bytes, tf.constant(1)))}

  def _caption_beam(self, image_bytes, beam_size):
    return {"caption": self._caption_strings(self._caption_tokens(image_bytes, beam_size))}

  def _task_functions(self) -> dict:
    """{signature name: (python function, input signature)} of this run's task."""
    task = self._run.task.name
    functions = {"embed_image": (self._embed_image, [_IMAGES])}
    if task in (config_lib.PRETRAIN, "retrieval"):
      functions["score"] = (self._score, [_IMAGES, _TEXTS])
    elif task in ("category", "subcategory"):
      functions["classify"] = (self._classify, [_IMAGES, _TEXTS])
    elif task == "caption":
      functions["caption"] = (self._caption, [_IMAGES])
      functions["caption_beam"] = (self._caption_beam,
                                   [_IMAGES, tf.TensorSpec([], tf.int32, name="beam_size")])
    return functions

  def signatures(self) -> dict[str, tf.types.experimental.GenericFunction]:
    """The tf.functions of this run's task (attributes of the module, so they are saved)."""
    return {name: getattr(self, name) for name in self._task_functions()}


def _normalised_vocab(vocab_file: str, folder: str) -> str:
  """A copy of the vocabulary with one token per line and "\\n" endings (the asset)."""
  path = os.path.join(folder, "vocab.txt")
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.writelines(token + "\n" for token in vocab_lib.read_vocab(vocab_file))
  return path


def _file_digests(folder: str) -> dict[str, dict]:
  """{path relative to `folder`: {"bytes", "sha256"}} of every file below it."""
  digests = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      digests[os.path.relpath(path, folder)] = {"bytes": os.path.getsize(path),
                                                "sha256": files.file_sha256(path)}
  return digests


def verify(export_dir: str) -> dict:
  """The kaleido_export.json of the SavedModel at `export_dir` once every file it lists is there
  with its size and SHA-256 and the model loads; otherwise one sentence naming the damaged
  file (a KaleidoError)."""
  fix = "export the run again into a new folder with python tools/export_saved_model.py"
  info = files.read_json(os.path.join(export_dir, EXPORT_INFO), fix)
  for name, expected in sorted(info.get("files", {}).items()):
    path = os.path.join(export_dir, name)
    if not os.path.isfile(path):
      raise files.DamagedFileError(f"{path!r} of the SavedModel is missing; {fix}.")
    if (os.path.getsize(path) != expected["bytes"] or
        files.file_sha256(path) != expected["sha256"]):
      raise files.DamagedFileError(f"{path!r} of the SavedModel is damaged (its size or SHA-256 "
                                   f"differs from {EXPORT_INFO}'s); {fix}.")
  try:  # the graph's tokenizer ops are registered: preprocessing imports tensorflow_text
    tf.saved_model.load(export_dir)
  except (OSError, ValueError, IndexError, tf.errors.OpError) as error:
    raise files.DamagedFileError(f"The SavedModel {export_dir!r} does not load "
                                 f"({errors.first_line(error)}); {fix}.") from error
  return info


def export(checkpoint: str, output_dir: str, mixed_precision: str = "none") -> dict:
  """Writes the SavedModel of a train.py model_dir (or checkpoint) to `output_dir` atomically;
  returns what kaleido_export.json records."""
  if os.path.exists(output_dir):
    raise errors.KaleidoError(f"--output={output_dir!r} exists; pass a new folder (the export "
                              "never overwrites one).")
  run = config_lib.load(checkpoint)
  if run.task.name not in eval_runs.TASKS_OF_RUN:
    raise errors.KaleidoError(
        f"{checkpoint!r} is a {run.task.name} run; the export serves pre-training and fine-tuned "
        "Kaleido-BERT runs of train.py.")
  tf_keras.mixed_precision.set_global_policy(
      "float32" if mixed_precision == "none" else mixed_precision)
  checkpoint_path = restoring.latest_checkpoint(checkpoint)
  model = eval_runs.restored_model(run, checkpoint_path)
  patch_config = patch_config_of(run)
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  work = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    vocab_file = _normalised_vocab(config_lib.vocab_file_of(run), work)
    module = KaleidoServingModule(run, model, vocab_file, patch_config)
    staged = os.path.join(work, "saved_model")
    tf.saved_model.save(module, staged, signatures=module.signatures())
    info = {"checkpoint": os.path.abspath(checkpoint_path), "task": run.task.name,
            "vocab_hash": run.data.vocab_hash, "max_seq_length": run.model.max_seq_length,
            "patch": dataclasses.asdict(patch_config), "mixed_precision": mixed_precision,
            "label_names": list(run.data.label_names),
            "signatures": sorted(module.signatures()), "files": _file_digests(staged)}
    files.write_json(os.path.join(staged, EXPORT_INFO), info)
    os.replace(staged, output_dir)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  return info
