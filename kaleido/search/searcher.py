"""Two-stage search over an index: text -> the catalog's images, image -> the catalog's texts.

The first stage scores every indexed item by the cosine of its ITC embedding with the query's
(exact dot products in blocks); the ITM cross-encoder then re-ranks the best `rerank` by logit
margin, reading the cached patch features (kaleido.evaluation.two_stage).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.data import images
from kaleido.evaluation import encoders as encoders_lib
from kaleido.evaluation import runs as eval_runs
from kaleido.evaluation import two_stage
from kaleido.patches import cutting
from kaleido.patches import generator
from kaleido.records import prepare
from kaleido.search import defaults
from kaleido.search import index as index_lib
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.utils import restoring
from kaleido.utils import text_validity

BLOCK = 65536  # indexed items per first-stage matrix product


@dataclasses.dataclass(frozen=True)
class Hit:
  """One result: an indexed example (row), its scores and what to show of it."""
  rank: int
  row: int
  product_id: str
  image_id: str
  text: str
  first_stage: float  # cosine of the ITC embeddings
  itm_margin: float | None  # the cross-encoder's log-odds, when re-ranked

  def as_json(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ImageQuery:
  """A query image as the model sees it: its patch features, boxes and crop thumbnail."""
  patch_features: np.ndarray  # (55, F) float32
  patch_boxes: np.ndarray  # (55, 5) float32
  thumbnail: bytes


class Searcher:
  """An index with the model it was built with."""

  def __init__(self, index_dir: str, checkpoint: str = "", batch_size: int = defaults.BATCH_SIZE):
    self.index = index_lib.load_index(index_dir)
    info = self.index.info
    checkpoint_path = restoring.latest_checkpoint(checkpoint or info["checkpoint"])
    if index_lib.checkpoint_fingerprint(checkpoint_path) != info["checkpoint_sha256"]:
      raise index_lib.SearchIndexError(
          f"The index {index_dir!r} was built with the checkpoint {info['checkpoint']!r}, not "
          f"{checkpoint_path!r} (their weights differ); search it with its own checkpoint or "
          "rebuild it with tools/build_index.py --checkpoint for this one.")
    self.run = config_lib.load(checkpoint_path)
    if self.run.data.vocab_hash != info["vocab_hash"]:
      raise index_lib.SearchIndexError(
          f"The index {index_dir!r} was built with the vocabulary {info['vocab_file']!r}, the "
          f"checkpoint uses {self.run.data.vocab_file!r}; rebuild the index with this "
          "checkpoint.")
    self.encoders = encoders_lib.RetrievalEncoders(
        eval_runs.restored_model(self.run, checkpoint_path), batch_size)
    self.tokenizer = tokenizer_lib.KaleidoTokenizer(config_lib.vocab_file_of(self.run),
                                                    info["max_seq_length"])
    # One text per product for image -> text search: the first indexed example of each.
    _, self._product_rows = np.unique(self.index.product_ids, return_index=True)
    self._patch_generator = None

  def _first_stage(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    return np.concatenate([candidates[start:start + BLOCK] @ query
                           for start in range(0, len(candidates), BLOCK)])

  def _hits(self, rows: np.ndarray, first_stage: np.ndarray, rerank: int, top_k: int,
            margins_of, fusion_weight: float) -> list[Hit]:
    """The top_k of `rows` (candidate rows of the index) under the two stages."""
    margin_by_column: dict[int, float] = {}

    def margins(columns: np.ndarray) -> np.ndarray:
      values = margins_of(rows[columns[0]])
      margin_by_column.update(zip(columns[0].tolist(), values.tolist()))
      return values[np.newaxis]

    scores = two_stage.rerank_scores(first_stage[np.newaxis], rerank, margins, fusion_weight)[0]
    best = two_stage.top_columns(scores[np.newaxis], top_k)[0]
    index = self.index
    return [Hit(rank=rank + 1, row=int(rows[c]), product_id=str(index.product_ids[rows[c]]),
                image_id=str(index.image_ids[rows[c]]), text=str(index.texts[rows[c]]),
                first_stage=float(first_stage[c]), itm_margin=margin_by_column.get(int(c)))
            for rank, c in enumerate(best)]

  def search_text(self, query: str, top_k: int = defaults.TOP_K,
                  rerank: int = two_stage.DEFAULT_RERANK,
                  fusion_weight: float = two_stage.DEFAULT_FUSION_WEIGHT) -> list[Hit]:
    """The indexed images that best show `query`: the first stage's best `rerank` re-ranked by
    ITM margin + `fusion_weight` x first-stage cosine (the defaults measured best, issue #33)."""
    if text_validity.is_empty(query):
      raise errors.KaleidoError(f"The text query {query!r} shows no character (only spaces, "
                                "zero-width or control characters); give words to search for.")
    ids = self.tokenizer.encode_batch([text_validity.clean(query)]).token_ids[0]
    word_ids, input_mask = encoders_lib.empty_texts(1, self.tokenizer.max_seq_length)
    word_ids[0, :len(ids)] = ids
    input_mask[0, :len(ids)] = 1
    index = self.index
    boxes, features = encoders_lib.empty_images(1, *index.patch_features.shape[1:])
    text_embedding, _ = self.encoders.embeddings(word_ids, input_mask, boxes, features)
    rows = np.arange(len(index))
    first_stage = self._first_stage(text_embedding[0], index.image_embeddings)

    def margins_of(candidate_rows: np.ndarray) -> np.ndarray:
      count = len(candidate_rows)
      return self.encoders.margins(np.repeat(word_ids, count, 0), np.repeat(input_mask, count, 0),
                                   index.patch_boxes[candidate_rows],
                                   index.patch_features[candidate_rows].astype(np.float32))

    return self._hits(rows, first_stage, rerank, top_k, margins_of, fusion_weight)

  def image_query(self, image: np.ndarray) -> ImageQuery:
    """An (H, W, 3) uint8 RGB image cropped and cut as the index's data was prepared."""
    if self._patch_generator is None:
      config = (prepare.folder_patch_config(self.index.info["data"]) or
                generator.PatchConfig(patch_size=self.run.data.patch_size))
      self._patch_generator = generator.KaleidoPatchGenerator(config)
    crop = self._patch_generator.crops([image])[0]
    pixels = tf.io.decode_jpeg(crop.crop_jpeg, channels=3)
    patches = cutting.cut_patches(pixels, self.run.data.patch_size).numpy()
    return ImageQuery(patch_features=self.encoders.patch_features(patches[np.newaxis])[0],
                      patch_boxes=cutting.patch_boxes(tf.constant(crop.crop_box)).numpy(),
                      thumbnail=crop.crop_jpeg)

  def search_image(self, query: ImageQuery, top_k: int = defaults.TOP_K,
                   rerank: int = two_stage.DEFAULT_RERANK,
                   fusion_weight: float = two_stage.DEFAULT_FUSION_WEIGHT) -> list[Hit]:
    """The indexed products' texts that best describe the query image (one text per
    product; re-ranked as search_text)."""
    index = self.index
    word_ids, input_mask = encoders_lib.empty_texts(1, index.word_ids.shape[1])
    _, image_embedding = self.encoders.embeddings(word_ids, input_mask,
                                                  query.patch_boxes[np.newaxis],
                                                  query.patch_features[np.newaxis])
    rows = self._product_rows
    first_stage = self._first_stage(image_embedding[0], index.text_embeddings[rows])

    def margins_of(candidate_rows: np.ndarray) -> np.ndarray:
      count = len(candidate_rows)
      return self.encoders.margins(index.word_ids[candidate_rows],
                                   index.input_mask[candidate_rows],
                                   np.repeat(query.patch_boxes[np.newaxis], count, 0),
                                   np.repeat(query.patch_features[np.newaxis], count, 0))

    return self._hits(rows, first_stage, rerank, top_k, margins_of, fusion_weight)


def read_query_image(path: str) -> np.ndarray:
  """The image file at `path` as RGB, or one sentence naming what is wrong with it."""
  image, problem = images.read_image(path)
  if image is None:
    raise errors.KaleidoError(f"--image={path!r} cannot be read ({problem}); pass a JPEG or PNG "
                              "file.")
  return image
