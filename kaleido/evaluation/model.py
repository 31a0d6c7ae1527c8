"""A trained model_dir on an evaluation folder: the model side of evaluate.py.

The image side of the cross-encoder (the patch embedder's features of the 55 patches, the costly
part with ResNet-50) is computed once per image, kept in memory as float16, and reused for every
text it is paired with. Examples are kept as serialized records and decoded only when their
features are first needed.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.evaluation import caption_decoding
from kaleido.evaluation import encoders
from kaleido.evaluation import examples as examples_lib
from kaleido.evaluation import runs
from kaleido.evaluation import two_stage
from kaleido.feature_cache import store as cache_store
from kaleido.model import kaleido_bert
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.text import vocab as vocab_lib
from kaleido.utils import progress as progress_lib
from kaleido.utils import restoring

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class EvaluationModel:
  """Scores, labels and captions of a trained model on an evaluation folder."""

  def __init__(self, run: config_lib.ExperimentConfig, checkpoint_path: str, eval_data: str,
               batch_size: int, retrieval_text: str = "", caption_cache: bool = True,
               patch_features: str = ""):
    """`retrieval_text` (name or description) overrides the run's own (names for runs that were
    not fine-tuned for retrieval); `caption_cache` decodes autoregressive captions with the
    key/value cache (kaleido.model.caption_decoder) instead of re-running the encoder;
    `patch_features` (config.PATCH_FEATURES) overrides the run's own: with a frozen patch CNN,
    the patch features are read from the folder's feature cache (built on first use)."""
    manifest = manifest_lib.load(eval_data)
    runs.check_vocabulary(run, manifest, eval_data)
    if run.task.name not in runs.TASKS_OF_RUN:
      raise errors.KaleidoError(
          f"{checkpoint_path!r} is a {run.task.name} run, which evaluate.py does not evaluate; "
          "pass a pre-training or fine-tuning model_dir of train.py.")
    self.run = run
    self.batch_size = batch_size
    self.step = runs.checkpoint_step(checkpoint_path)  # the TensorBoard step of the metrics
    vocab_file = config_lib.vocab_file_of(run)
    self.tokenizer = tokenizer_lib.KaleidoTokenizer(vocab_file, run.model.max_seq_length)
    self.special_ids = vocab_lib.special_ids_of(vocab_file)
    self._model = runs.restored_model(run, checkpoint_path)
    retrieval_text = retrieval_text or (run.task.finetune.retrieval_text
                                        if run.task.name == "retrieval"
                                        else config_lib.RETRIEVAL_TEXTS[0])
    self.retrieval_text = retrieval_text if self.supports("itr") else ""
    self._reader_config = reader.reader_config(manifest, name_as_text=self.retrieval_text == "name",
                                               folder=eval_data)
    self._examples = examples_lib.read_examples(eval_data, self._reader_config)
    self._features: dict[int, np.ndarray] = self._cached_features(eval_data, patch_features)
    self._embeddings: tuple[np.ndarray, np.ndarray] | None = None
    self._retrieval = (encoders.RetrievalEncoders(self._model, batch_size)
                       if isinstance(self._model, kaleido_bert.KaleidoMatcher) else None)
    backbone = self._model.backbone
    self._embed = tf.function(reduce_retracing=True)(
        lambda patches: backbone.patch_embedder(patches, training=False))
    self._encode = tf.function(reduce_retracing=True)(
        lambda inputs: backbone(inputs, training=False))
    self._captioner = (caption_decoding.CaptionDecoding(
        self._model, run, self._encode, self.special_ids, caption_cache)
                       if run.task.name == "caption" else None)

  def _cached_features(self, eval_data: str, patch_features: str) -> dict[int, np.ndarray]:
    """{example index: (55, F) float16 features} from the folder's feature cache when the run
    reads one (kaleido.feature_cache), else empty (`patch_features` embeds them on demand)."""
    cache = runs.feature_cache(self.run, self._model, eval_data, patch_features)
    if cache is None:
      return {}
    image_ids, features = cache_store.read_patch_features(cache)
    if image_ids != self._examples.image_ids:
      raise cache_store.FeatureCacheError(
          f"The feature cache {cache.folder!r} does not hold the examples of {eval_data!r} in "
          "their order; delete it and rerun: it is rebuilt.")
    return dict(enumerate(features))

  @property
  def examples(self) -> examples_lib.Examples:
    """The evaluation folder's examples, in file order."""
    return self._examples

  @property
  def product_ids(self) -> np.ndarray:
    return self._examples.product_ids

  @property
  def subcategory_ids(self) -> np.ndarray:
    return self._examples.subcategory_ids

  @property
  def num_examples(self) -> int:
    return len(self._examples.serialized)

  def supports(self, task: str) -> bool:
    """Whether this run was trained for evaluation task `task` (itr, tir, category, ...)."""
    return task in runs.TASKS_OF_RUN[self.run.task.name]

  def _check(self, task: str) -> None:
    if not self.supports(task):
      raise errors.KaleidoError(
          f"The checkpoint was trained for --task={self.run.task.name}, which cannot be "
          f"evaluated on {task}; pass a checkpoint fine-tuned for it.")

  def patch_features(self, indices: Sequence[int]) -> np.ndarray:
    """(len(indices), 55, F) float32 patch features, each image embedded once."""
    missing = sorted({int(i) for i in indices} - self._features.keys())
    if missing:
      config = self._reader_config
      patches = tf.data.Dataset.from_tensor_slices(
          [self._examples.serialized[i] for i in missing]).map(
              lambda record: reader.decode(record, config)["patches"],
              num_parallel_calls=tf.data.AUTOTUNE).batch(self.batch_size).prefetch(1)
      done = 0
      for batch in patches:
        for features in self._embed(batch).numpy():
          self._features[missing[done]] = features.astype(np.float16)
          done += 1
    return np.stack([self._features[int(i)] for i in indices]).astype(np.float32)

  def _encoder_inputs(self, text_rows: np.ndarray, image_rows: np.ndarray,
                      word_ids: np.ndarray | None = None,
                      input_mask: np.ndarray | None = None) -> dict[str, tf.Tensor]:
    examples = self._examples
    return {
        "input_word_ids": tf.constant(examples.word_ids[text_rows] if word_ids is None
                                      else word_ids),
        "input_mask": tf.constant(examples.input_mask[text_rows] if input_mask is None
                                  else input_mask),
        "patch_boxes": tf.constant(examples.patch_boxes[image_rows]),
        "patch_features": tf.constant(self.patch_features(image_rows)),
    }

  def matched_margin(self, text_rows: np.ndarray, image_rows: np.ndarray) -> np.ndarray:
    """(n,) ITM log-odds z_matched - z_unmatched of (text of text_rows[k], image of
    image_rows[k]): the retrieval score (heads.itm_margin)."""
    examples = self._examples
    margins = [np.zeros([0], np.float32)]
    for start in range(0, len(text_rows), self.batch_size):
      texts = text_rows[start:start + self.batch_size]
      images = image_rows[start:start + self.batch_size]
      margins.append(self._retrieval.margins(
          examples.word_ids[texts], examples.input_mask[texts], examples.patch_boxes[images],
          self.patch_features(images)))
    return np.concatenate(margins)

  def joint_states(self, text_rows: np.ndarray,
                   image_rows: np.ndarray) -> dict[str, np.ndarray]:
    """The joint pass over (text of text_rows[k], image of image_rows[k]), each (n, H):
    "pooled" (the pooler's output, what ITM reads), "cls" (the last layer's [CLS] state),
    "text_mean" and "patch_mean" (the last layer's states averaged over the real text tokens
    and over the 55 patches)."""
    states: dict[str, list[np.ndarray]] = {"pooled": [], "cls": [], "text_mean": [],
                                           "patch_mean": []}
    for start in range(0, len(text_rows), self.batch_size):
      texts = text_rows[start:start + self.batch_size]
      inputs = self._encoder_inputs(texts, image_rows[start:start + self.batch_size])
      encoded = self._encode(inputs)
      sequence = tf.cast(encoded["sequence_output"], tf.float32).numpy()
      text_mask = self._examples.input_mask[texts].astype(np.float32)[:, :, None]
      length = text_mask.shape[1]
      states["pooled"].append(tf.cast(encoded["pooled_output"], tf.float32).numpy())
      states["cls"].append(sequence[:, 0])
      states["text_mean"].append((sequence[:, :length] * text_mask).sum(1) / text_mask.sum(1))
      states["patch_mean"].append(sequence[:, length:].mean(1))
    return {name: np.concatenate(values) for name, values in states.items()}

  def attention_to_patches(self, text_rows: np.ndarray,
                           image_rows: np.ndarray) -> dict[str, np.ndarray]:
    """How much attention the text gives the image in the joint pass over (text of
    text_rows[k], image of image_rows[k]): per layer (num_layers,), averaged over heads and
    pairs, the attention mass that the [CLS] query ("cls") and the real text queries
    ("text") put on the patches, and "uniform", the mass an even spread over every visible
    position would put there."""
    encoder = self._model.backbone.encoder
    sums = {"cls": 0.0, "text": 0.0, "uniform": 0.0}
    for start in range(0, len(text_rows), self.batch_size):
      texts = text_rows[start:start + self.batch_size]
      inputs = self._encoder_inputs(texts, image_rows[start:start + self.batch_size])
      layers = encoder.attention_probabilities(inputs)
      text_mask = self._examples.input_mask[texts].astype(np.float32)
      length = text_mask.shape[1]
      on_patches = np.stack([tf.reduce_mean(tf.cast(p, tf.float32), 1).numpy()[:, :, length:]
                             .sum(-1) for p in layers], 1)  # (B, layers, S)
      sums["cls"] += on_patches[:, :, 0].sum(0)
      sums["text"] += ((on_patches[:, :, :length] * text_mask[:, None]).sum(-1) /
                       text_mask.sum(-1)[:, None]).sum(0)
      visible = float(encoder.num_visible_patches)
      sums["uniform"] += (visible / (visible + text_mask.sum(-1))).sum() * np.ones(len(layers))
    return {name: value / len(text_rows) for name, value in sums.items()}

  def contrastive_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
    """((N, D) text, (N, D) image) ITC embeddings of every example (the first search stage),
    computed once."""
    if self._embeddings is None:
      examples = self._examples
      texts, images = [], []
      for start in range(0, self.num_examples, self.batch_size):
        rows = np.arange(start, min(start + self.batch_size, self.num_examples))
        text, image = self._retrieval.embeddings(examples.word_ids[rows],
                                                 examples.input_mask[rows],
                                                 examples.patch_boxes[rows],
                                                 self.patch_features(rows))
        texts.append(text)
        images.append(image)
      self._embeddings = np.concatenate(texts), np.concatenate(images)
    return self._embeddings

  def matched_probability(self, text_rows: np.ndarray, image_rows: np.ndarray) -> np.ndarray:
    """(n,) ITM matched-class probability, the sigmoid of `matched_margin` (for reading, not
    for ranking: it saturates)."""
    return 1.0 / (1.0 + np.exp(-self.matched_margin(text_rows, image_rows).astype(np.float64)))

  def retrieval_scorer(self, direction: str, rerank: int = two_stage.WHOLE_GALLERY,
                       fusion_weight: float = 0.0) -> Scorer:
    """scorer(query_indices, candidate_indices) -> scores of the same shape as the candidates.

    rerank -1: the ITM logit margins of every candidate (never saturated, so a confident model's
    scores do not tie); 0: the ITC cosine of the independent embeddings alone; N: the two
    stages (kaleido.evaluation.two_stage; the re-ranked get margin + `fusion_weight` x cosine).
    ITR: the query is an image, the candidates texts; TIR the
    other way round. `query_indices` has shape (Q,), `candidate_indices` (Q, C) or (C,) (then
    shared by all queries).
    """
    self._check(direction)
    with_first_stage = rerank != two_stage.WHOLE_GALLERY or fusion_weight != 0.0
    if with_first_stage:
      self.contrastive_embeddings()  # the one sentence now when the run has no ITC head

    def scorer(query_indices: np.ndarray, candidate_indices: np.ndarray) -> np.ndarray:
      queries = np.asarray(query_indices)
      candidates = np.asarray(candidate_indices)
      if candidates.ndim == 1:
        candidates = np.broadcast_to(candidates, (len(queries), len(candidates)))

      def margins_of(columns: np.ndarray) -> np.ndarray:
        chosen = np.take_along_axis(candidates, columns, axis=1)
        query_rows = np.broadcast_to(queries[:, None], chosen.shape).reshape(-1)
        images, texts = ((query_rows, chosen.reshape(-1)) if direction == "itr"
                         else (chosen.reshape(-1), query_rows))
        return self.matched_margin(texts, images).reshape(chosen.shape)

      first_stage = np.zeros(candidates.shape)
      if with_first_stage:
        text, image = self.contrastive_embeddings()
        query_side, candidate_side = (image, text) if direction == "itr" else (text, image)
        first_stage = np.einsum("qd,qcd->qc", query_side[queries], candidate_side[candidates])
      return two_stage.rerank_scores(first_stage, rerank, margins_of, fusion_weight)

    return scorer

  def class_probabilities(self, task: str) -> np.ndarray:
    """(N, C) float32 softmax of the classifier over every example of the evaluation folder."""
    self._check(task)
    classifier = self._model.classifier
    rows = np.arange(self.num_examples)
    probabilities = []
    progress = progress_lib.Progress(len(rows), f"classify {task}", unit="images")
    for start in range(0, len(rows), self.batch_size):
      chunk = rows[start:start + self.batch_size]
      pooled = self._encode(self._encoder_inputs(chunk, chunk))["pooled_output"]
      logits = tf.cast(classifier(pooled), tf.float32)
      probabilities.append(tf.nn.softmax(logits).numpy())
      progress.update(len(chunk))
    progress.close()
    return np.concatenate(probabilities)

  def classify(self, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(true labels, predicted labels, class names by id) over the whole evaluation folder."""
    predictions = np.argmax(self.class_probabilities(task), axis=-1)
    labels = (self._examples.category_ids if task == "category"
              else self._examples.subcategory_ids)
    return labels, predictions, list(self.run.data.label_names)

  def captions(self, beam_size: int = 1) -> tuple[dict[str, str], dict[str, list[str]]]:
    """({image id: generated caption}, {image id: [the product's text]})."""
    self._check("caption")
    rows = np.arange(self.num_examples)
    generated = []
    progress = progress_lib.Progress(len(rows), "caption", unit="images")
    for start in range(0, len(rows), self.batch_size):
      chunk = rows[start:start + self.batch_size]
      generated.extend(self._captioner.decode(self.patch_features(chunk),
                                              self._examples.patch_boxes[chunk], beam_size))
      progress.update(len(chunk))
    progress.close()
    image_ids = self._examples.image_ids
    predictions = {image_ids[i]: self.tokenizer.decode(tokens) for i, tokens in
                   zip(rows, generated)}
    references = {image_ids[i]: [self._examples.texts[i]] for i in rows}
    return predictions, references


def load(checkpoint: str, eval_data: str, batch_size: int = 32,
         retrieval_text: str = "", caption_cache: bool = True,
         mixed_precision: str = "none", patch_features: str = "") -> EvaluationModel:
  """The model of a train.py model_dir (or one of its checkpoints) on a prepared folder;
  `retrieval_text`, `caption_cache` and `patch_features` as in EvaluationModel;
  `mixed_precision` the compute policy it is built under (config.MIXED_PRECISION; weights stay
  float32)."""
  if not os.path.exists(checkpoint) and not os.path.isfile(checkpoint + ".index"):
    raise errors.KaleidoError(f"--checkpoint={checkpoint!r} does not exist; pass the --model_dir "
                              "of a train.py run or one of its checkpoints.")
  run = config_lib.load(checkpoint)
  tf_keras.mixed_precision.set_global_policy(
      "float32" if mixed_precision == "none" else mixed_precision)
  return EvaluationModel(run, restoring.latest_checkpoint(checkpoint), eval_data, batch_size,
                         retrieval_text, caption_cache, patch_features)
