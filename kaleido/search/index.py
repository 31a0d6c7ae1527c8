"""A search index of a prepared folder: what two-stage search needs of every example.

  INDEX_DIR/index.json         who built it (checkpoint and its fingerprint, vocabulary, data
                               folder, text side) and, once complete, the counts
  INDEX_DIR/chunk-00000.npz …  `chunk_size` examples each, in the folder's record order: the ITC
                               embeddings of the image and of the text, the image's patch
                               features (float16: the re-ranker's image side, so no image is
                               embedded again), patch boxes, token ids, ids, texts, a thumbnail

Each chunk is written atomically, so an interrupted build resumes at the first missing chunk; a
build into an index made from another checkpoint, data folder or text side is refused, and so
is searching an index with a checkpoint other than its own.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import zipfile
from typing import TextIO

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.evaluation import encoders as encoders_lib
from kaleido.evaluation import runs as eval_runs
from kaleido.feature_cache import store as cache_store
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.records import schema
from kaleido.search import defaults
from kaleido.utils import files
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib
from kaleido.utils import restoring

FORMAT = "kaleido-search-index/1"
INDEX_NAME = "index.json"
THUMBNAIL_SIDE = 160  # pixels of a thumbnail's longer side
# Keys of the identity: an index is extended or searched only by what it was built with.
IDENTITY_KEYS = ("format", "checkpoint_sha256", "data", "data_manifest_sha256", "vocab_hash",
                 "retrieval_text", "chunk_size")


class SearchIndexError(errors.KaleidoError):
  """An index that cannot be built, extended or searched as asked; the message says why."""


def checkpoint_fingerprint(checkpoint_path: str) -> str:
  """SHA-256 of a checkpoint's .index file (it changes whenever the weights are saved again)."""
  return files.file_sha256(checkpoint_path + ".index")


def _identity(checkpoint_path: str, run: config_lib.ExperimentConfig, data: str,
              retrieval_text: str, chunk_size: int) -> dict:
  return {
      "format": FORMAT, "checkpoint": os.path.abspath(checkpoint_path),
      "checkpoint_sha256": checkpoint_fingerprint(checkpoint_path),
      "data": os.path.abspath(data),
      "data_manifest_sha256": files.file_sha256(os.path.join(data, manifest_lib.MANIFEST_NAME)),
      "vocab_hash": run.data.vocab_hash, "vocab_file": run.data.vocab_file,
      "retrieval_text": retrieval_text, "chunk_size": chunk_size,
  }


def _chunk_path(output: str, number: int) -> str:
  return os.path.join(output, f"chunk-{number:05d}.npz")


def _check_same_build(output: str, identity: dict) -> dict:
  """The index.json already in `output` (empty when none), refusing one of another build."""
  path = os.path.join(output, INDEX_NAME)
  if not os.path.exists(path):
    if glob.glob(os.path.join(output, "*")):
      raise SearchIndexError(f"{output!r} is not empty and holds no {INDEX_NAME}; pass an empty "
                             "or new --output folder.")
    return {}
  existing = files.read_json(path, "delete the folder or pass a new --output to build the index "
                             "again")
  for key in IDENTITY_KEYS:
    if existing.get(key) != identity[key]:
      raise SearchIndexError(
          f"{output!r} is an index built with another {key.replace('_', ' ')} "
          f"({existing.get(key)!r}, now {identity[key]!r}); pass a new --output folder to build "
          "one for these settings, or delete that one.")
  return existing


def _examples(data: str, config: reader.ReaderConfig, start: int, batch_size: int,
              cache: cache_store.FeatureCache | None) -> tf.data.Dataset:
  """Batches of the folder's examples from record `start` on, in record order, with the
  thumbnail of each crop; the patches' pixels, or their features from the feature `cache`."""
  decode_example = reader.decoder(config, cache)

  def decode(serialized, *cached):
    example = decode_example(serialized, *cached)
    crop = tf.io.decode_jpeg(schema.parse(serialized)["crop_jpeg"], channels=3)
    thumbnail = tf.image.resize(crop, [THUMBNAIL_SIDE, THUMBNAIL_SIDE], preserve_aspect_ratio=True,
                                antialias=True)
    image = ({"patches": example["patches"]} if cache is None
             else {"patch_features": reader.patch_features(example)})
    keys = ("input_word_ids", "input_mask", "patch_boxes", "product_id", "image_id", "text")
    return {**{key: example[key] for key in keys}, **image,
            "thumbnail": tf.io.encode_jpeg(tf.cast(tf.round(thumbnail), tf.uint8), quality=85)}

  return (reader.ordered_records(data, cache).skip(start)
          .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(batch_size).prefetch(1))


def _strings(values: np.ndarray) -> np.ndarray:
  return np.asarray([value.decode("utf-8") for value in values])


def _write_chunk(path: str, batches: list[dict], encoders: encoders_lib.RetrievalEncoders,
                 first_row: int) -> int:
  """Embeds and writes one chunk of decoded batches; returns its number of examples."""
  joined = {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
  features = (joined["patch_features"] if "patch_features" in joined
              else encoders.patch_features(joined["patches"]))
  text_embeddings, image_embeddings = encoders.embeddings(
      joined["input_word_ids"], joined["input_mask"], joined["patch_boxes"], features)
  thumbnails = list(joined["thumbnail"])
  offsets = np.cumsum([0] + [len(t) for t in thumbnails]).astype(np.int64)
  count = len(features)
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "wb") as f:
      np.savez(f, rows=np.arange(first_row, first_row + count, dtype=np.int64),
               image_embeddings=image_embeddings.astype(np.float32),
               text_embeddings=text_embeddings.astype(np.float32),
               patch_features=features.astype(np.float16),
               patch_boxes=joined["patch_boxes"].astype(np.float32),
               word_ids=joined["input_word_ids"].astype(np.int32),
               input_mask=joined["input_mask"].astype(np.int32),
               product_ids=_strings(joined["product_id"]), image_ids=_strings(joined["image_id"]),
               texts=_strings(joined["text"]),
               thumbnails=np.frombuffer(b"".join(thumbnails), np.uint8),
               thumbnail_offsets=offsets)
  return count


def build_index(checkpoint: str, data: str, output: str, batch_size: int = defaults.BATCH_SIZE,
                chunk_size: int = defaults.CHUNK_SIZE, retrieval_text: str = "",
                progress_stream: TextIO | None = None, patch_features: str = "") -> dict:
  """Builds (or resumes building) the index of prepared folder `data` with the model of
  `checkpoint` (a train.py model_dir or checkpoint) in `output`; returns its index.json.

  `retrieval_text`: the text side (name or description; default the run's own, as evaluate.py).
  `patch_features` (config.PATCH_FEATURES; default the run's own): with a frozen patch CNN, the
  patch features come from the folder's feature cache (built on first use).
  """
  if chunk_size < 1 or batch_size < 1:
    raise SearchIndexError(f"--chunk_size={chunk_size} and --batch_size={batch_size} must be >= 1.")
  if not os.path.exists(checkpoint) and not os.path.isfile(checkpoint + ".index"):
    raise SearchIndexError(f"--checkpoint={checkpoint!r} does not exist; pass the --model_dir of a "
                      "train.py run or one of its checkpoints.")
  run = config_lib.load(checkpoint)
  checkpoint_path = restoring.latest_checkpoint(checkpoint)
  manifest = manifest_lib.load(data)
  eval_runs.check_vocabulary(run, manifest, data)
  retrieval_text = retrieval_text or (run.task.finetune.retrieval_text
                                      if run.task.name == "retrieval" else "name")
  config = reader.reader_config(manifest, name_as_text=retrieval_text == "name", folder=data)
  identity = _identity(checkpoint_path, run, data, retrieval_text, chunk_size)
  os.makedirs(output, exist_ok=True)
  files.remove_stale_temporaries(output)  # a killed build's half-written chunk
  existing = _check_same_build(output, identity)
  if existing.get("complete"):
    return existing
  model = eval_runs.restored_model(run, checkpoint_path)
  cache = eval_runs.feature_cache(run, model, data, patch_features)
  encoders = encoders_lib.RetrievalEncoders(model, batch_size)
  encoders.require_first_stage()
  files.write_json(os.path.join(output, INDEX_NAME), {**identity, "complete": False})
  num_chunks = -(-manifest.num_examples // chunk_size)
  done = 0
  while done < num_chunks and os.path.exists(_chunk_path(output, done)):
    done += 1
  progress = progress_lib.Progress(manifest.num_examples, "index", unit="images",
                                   initial=min(done * chunk_size, manifest.num_examples),
                                   stream=progress_stream)
  pending, pending_count, number = [], 0, done

  def flush(batches: list[dict]) -> None:
    nonlocal number
    progress.update(_write_chunk(_chunk_path(output, number), batches, encoders,
                                 number * chunk_size))
    number += 1

  for batch in interrupts.stopping_between(
      _examples(data, config, done * chunk_size, batch_size, cache), "batch", "chunks"):
    pending.append({key: value.numpy() for key, value in batch.items()})
    pending_count += len(pending[-1]["image_id"])
    while pending_count >= chunk_size:
      chunk, pending, pending_count = _split(pending, chunk_size)
      flush(chunk)
  if pending:
    flush(pending)
  progress.close()
  summary = {**identity, "complete": True, "num_images": manifest.num_examples,
             "num_chunks": num_chunks, "embedding_size": encoders.embedding_size,
             "max_seq_length": manifest.max_seq_length}
  files.write_json(os.path.join(output, INDEX_NAME), summary)
  return summary


def _split(batches: list[dict], size: int) -> tuple[list[dict], list[dict], int]:
  """(the first `size` examples of `batches` as batches, the rest as batches, its count)."""
  head, tail, taken = [], [], 0
  for batch in batches:
    count = len(batch["image_id"])
    if taken >= size:
      tail.append(batch)
    elif taken + count <= size:
      head.append(batch)
    else:
      cut = size - taken
      head.append({key: value[:cut] for key, value in batch.items()})
      tail.append({key: value[cut:] for key, value in batch.items()})
    taken += count
  return head, tail, sum(len(batch["image_id"]) for batch in tail)


@dataclasses.dataclass
class SearchIndex:
  """A complete index in memory."""
  info: dict  # its index.json
  image_embeddings: np.ndarray  # (N, D) float32
  text_embeddings: np.ndarray  # (N, D) float32
  patch_features: np.ndarray  # (N, 55, F) float16
  patch_boxes: np.ndarray  # (N, 55, 5) float32
  word_ids: np.ndarray  # (N, L) int32
  input_mask: np.ndarray  # (N, L) int32
  product_ids: np.ndarray  # (N,) str
  image_ids: np.ndarray  # (N,) str
  texts: np.ndarray  # (N,) str
  thumbnails: list[bytes]  # JPEG of each crop

  def __len__(self) -> int:
    return len(self.product_ids)


def load_index(folder: str) -> SearchIndex:
  """The complete index in `folder`; one sentence when it is missing or unfinished."""
  path = os.path.join(folder, INDEX_NAME)
  if not os.path.exists(path):
    raise SearchIndexError(f"{folder!r} holds no {INDEX_NAME}; build the index with python "
                      "tools/build_index.py --checkpoint RUN --data PREPARED --output "
                      f"{folder}.")
  info = files.read_json(path, "rebuild the index with tools/build_index.py into a new --output")
  if info.get("format") != FORMAT:
    raise SearchIndexError(f"{path!r} is not a {FORMAT} index; rebuild it with tools/build_index.py.")
  if not info.get("complete"):
    raise SearchIndexError(f"The index {folder!r} is unfinished (its build was interrupted); run the "
                      "same tools/build_index.py command again to finish it.")
  parts: dict[str, list] = {}
  thumbnails: list[bytes] = []
  for number in range(info.get("num_chunks", 0)):
    path = _chunk_path(folder, number)
    try:
      with np.load(path, allow_pickle=False) as chunk:
        for key in chunk.files:
          if key not in ("thumbnails", "thumbnail_offsets", "rows"):
            parts.setdefault(key, []).append(chunk[key])
        data, offsets = chunk["thumbnails"].tobytes(), chunk["thumbnail_offsets"]
        thumbnails += [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
      raise SearchIndexError(_damaged(path, error)) from error
  try:
    joined = {key: np.concatenate(values) for key, values in parts.items()}
    return SearchIndex(info=info, thumbnails=thumbnails, **joined)
  except (TypeError, ValueError) as error:
    raise SearchIndexError(_damaged(os.path.join(folder, "chunk-*"), error)) from error


def _damaged(path: str, error: Exception) -> str:
  return (f"The index file {path!r} is missing or damaged ({errors.first_line(error, 120)}); "
          "rebuild the index with tools/build_index.py into a new --output.")
