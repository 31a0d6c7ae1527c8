"""Catalog -> sharded TFRecords + manifest, in parallel, atomically and resumably.

A first pass over the texts and labels (`kaleido.records.catalog_scan`) fixes the label maps and
the rows with conflicting labels. Rows are split into contiguous shards. Worker processes read and
crop images (`kaleido.records.worker`); the main process tokenizes texts in batches and writes
each shard to a temporary name, renaming it only when complete and recording its counts, size and
SHA-256 in `progress/`. Examples are serialized deterministically, so the same catalog and
settings give byte-identical shards. A rerun with the same settings skips the finished shards;
different settings are refused unless `overwrite` is set.

The three steps are public so that kaleido.records.beam_prepare runs the middle one on Apache
Beam with the same code: `plan_catalog` (first pass, settings), `write_shard` (one shard from its
encoded chunks) and `finish` (the manifest).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import math
import multiprocessing
import os
import shutil
import signal
from typing import Callable, Iterable, Iterator, TypeVar

import tensorflow as tf

from kaleido import errors
from kaleido.data import catalog as catalog_lib
from kaleido.data import catalogs
from kaleido.patches import foreground
from kaleido.patches import generator
from kaleido.patches import kaleido_grid
from kaleido.records import catalog_scan
from kaleido.records import manifest as manifest_lib
from kaleido.records import prepare_config
from kaleido.records import schema
from kaleido.records import worker
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.utils import files
from kaleido.utils import filesystems
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib

PROGRESS_DIR = "progress"
SETTINGS_NAME = "prepare_settings.json"
UNKNOWN_LABEL = -1

T = TypeVar("T")
R = TypeVar("R")


def folder_patch_config(folder: str) -> generator.PatchConfig | None:
  """The patch generator settings a prepared folder was made with (its prepare_settings.json),
  or None when the file is not there."""
  path = os.path.join(folder, SETTINGS_NAME)
  if not os.path.isfile(path):
    return None
  settings = files.read_json(path, f"re-run python data/prepare.py --output_dir {folder} "
                             "--overwrite")
  patch = dict(settings["patch"])
  patch["foreground"] = foreground.ForegroundConfig(**patch["foreground"])
  return generator.PatchConfig(**patch)


class PrepareError(errors.KaleidoError):
  """Settings or inputs that make preparation impossible; the message says how to fix them."""


@dataclasses.dataclass
class ShardStats:
  """Counts of one written shard (kept in progress/ so a rerun can skip it)."""
  file: str
  num_examples: int = 0
  num_bytes: int = 0
  sha256: str = ""
  skipped_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
  num_foreground_fallback: int = 0
  num_truncated: int = 0
  num_unknown_labels: int = 0
  num_with_name: int = 0
  num_other_split: int = 0
  product_ids: list[str] = dataclasses.field(default_factory=list)

  def add(self, part: ShardStats) -> None:
    """Adds the counts of `part` (of a chunk of this shard's rows, in row order) to these."""
    for field in dataclasses.fields(self):
      value = getattr(part, field.name)
      if field.name in ("file", "num_bytes", "sha256"):
        continue
      if isinstance(value, dict):
        merged = getattr(self, field.name)
        for key, count in value.items():
          merged[key] = merged.get(key, 0) + count
      elif isinstance(value, list):
        getattr(self, field.name).extend(value)
      else:
        setattr(self, field.name, getattr(self, field.name) + value)


def shard_name(shard: int, num_shards: int) -> str:
  return f"examples-{shard:05d}-of-{num_shards:05d}.tfrecord"


def _label_maps(config: prepare_config.PrepareConfig,
                scan: catalog_scan.CatalogScan) -> tuple[dict[str, int], dict[str, int]]:
  if config.label_maps_from:
    reference = manifest_lib.load(config.label_maps_from)
    return reference.categories, reference.subcategories
  return scan.label_maps()


def _settings(config: prepare_config.PrepareConfig, num_rows: int, num_shards: int, vocab_hash: str,
              categories: dict[str, int], subcategories: dict[str, int],
              text_encoding: str) -> dict:
  """What must not change between an interrupted run and its resumption."""
  source = filesystems.absolute(config.input_path)
  return {
      "source": source,
      "source_size": filesystems.size(source),
      "num_rows": num_rows,
      "num_shards": num_shards,
      "vocab_hash": vocab_hash,
      "max_seq_length": config.max_seq_length,
      "text_field": config.text_field,
      "patch": dataclasses.asdict(config.patch),
      "categories": categories,
      "subcategories": subcategories,
      "schema_version": schema.SCHEMA_VERSION,
      "split": dataclasses.asdict(config.split) if config.split else None,
      "text_encoding": text_encoding,
  }


def _clear_output(output_dir: str) -> None:
  for name in os.listdir(output_dir):
    path = os.path.join(output_dir, name)
    if name == PROGRESS_DIR:
      shutil.rmtree(path)
    elif name.startswith("examples-") or name in (SETTINGS_NAME, manifest_lib.MANIFEST_NAME):
      os.remove(path)


def _check_or_start(config: prepare_config.PrepareConfig, settings: dict) -> None:
  os.makedirs(os.path.join(config.output_dir, PROGRESS_DIR), exist_ok=True)
  settings_path = os.path.join(config.output_dir, SETTINGS_NAME)
  # Unreadable settings (a damaged resume record) start the preparation again.
  previous = files.read_json_or_none(settings_path)
  if previous is not None and not config.overwrite:
    changed = [key for key in settings if previous.get(key) != settings[key]]
    if changed:
      raise PrepareError(
          f"{config.output_dir!r} holds a preparation made with other settings "
          f"({', '.join(changed)} "
          "differ); pass --overwrite to replace it or choose another --output_dir.")
    return
  _clear_output(config.output_dir)
  os.makedirs(os.path.join(config.output_dir, PROGRESS_DIR), exist_ok=True)
  files.write_json(settings_path, settings)


def _ordered_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int) -> Iterator[R]:
  """`map(fn, tasks)` over `workers` processes with a bounded number of tasks in flight."""
  if workers == 0:
    worker.initialize_worker(in_child=False)
    yield from map(fn, tasks)
    return
  context = multiprocessing.get_context("spawn")
  window = 4 * workers
  tasks = iter(tasks)
  # The pool starts a worker per submitted task up to `workers`: started while this process
  # ignores Ctrl-C, they inherit that and never take it mid-start-up (the parent handles it).
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    executor = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=worker.initialize_worker)
    pending = collections.deque(executor.submit(fn, task)
                                for task in itertools.islice(tasks, workers))
  finally:
    signal.signal(signal.SIGINT, previous)
  try:
    for task in tasks:
      pending.append(executor.submit(fn, task))
      if len(pending) >= window:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
  finally:  # on Ctrl-C or an error: the tasks not started are dropped, not run
    executor.shutdown(wait=True, cancel_futures=True)


class _ShardWriter:
  """Writes one shard to a temporary file, then renames it and records its stats."""

  def __init__(self, config: prepare_config.PrepareConfig, shard: int, num_shards: int):
    self.stats = ShardStats(file=shard_name(shard, num_shards))
    self._config = config
    self._shard = shard
    self._path = os.path.join(config.output_dir, self.stats.file)
    self._tmp_path = self._path + ".incomplete"
    self._writer = tf.io.TFRecordWriter(self._tmp_path)

  def write(self, records: list[bytes], stats: ShardStats) -> None:
    """Appends the examples of one chunk of rows, and its counts."""
    for record in records:
      self._writer.write(record)
    self.stats.add(stats)

  def finish(self) -> ShardStats:
    self._writer.close()
    self.stats.num_bytes = os.path.getsize(self._tmp_path)
    self.stats.sha256 = files.file_sha256(self._tmp_path)
    os.replace(self._tmp_path, self._path)
    files.write_json(_progress_path(self._config, self._shard), dataclasses.asdict(self.stats))
    return self.stats


def _progress_path(config: prepare_config.PrepareConfig, shard: int) -> str:
  return os.path.join(config.output_dir, PROGRESS_DIR, f"shard-{shard:05d}.json")


def _finished_shards(config: prepare_config.PrepareConfig,
                     num_shards: int) -> dict[int, ShardStats]:
  finished = {}
  for shard in range(num_shards):
    path = _progress_path(config, shard)
    stats = _shard_stats(files.read_json_or_none(path))
    if stats is not None and os.path.exists(os.path.join(config.output_dir, stats.file)):
      finished[shard] = stats
  return finished


def _shard_stats(payload: dict | None) -> ShardStats | None:
  """A shard's resume record, or None when it is missing or damaged (the shard is redone)."""
  try:
    return ShardStats(**payload) if payload is not None else None
  except TypeError:
    return None


class _ExampleEncoder:
  """Turns a chunk of worker results into serialized examples, counting what it skips."""

  def __init__(self, tokenizer: tokenizer_lib.KaleidoTokenizer, categories: dict[str, int],
               subcategories: dict[str, int]):
    self._tokenizer = tokenizer
    self._categories = categories
    self._subcategories = subcategories

  def encode(self, results: list[worker.RowResult]) -> tuple[list[bytes], ShardStats]:
    """Serialized examples of the good rows, and the counts of the chunk (skipped rows by
    reason among them)."""
    stats = ShardStats(file="")
    good = []
    for result in results:
      if result.skip_reason == catalog_scan.OTHER_SPLIT:
        stats.num_other_split += 1
      elif result.skip_reason:
        stats.skipped_reasons[result.skip_reason] = (
            stats.skipped_reasons.get(result.skip_reason, 0) + 1)
      else:
        good.append(result)
    if not good:
      return [], stats
    encoded = self._tokenizer.encode_batch([r.text for r in good])
    names = self._tokenizer.encode_batch([r.name for r in good]).token_ids
    records = []
    for result, token_ids, truncated, name_ids in zip(good, encoded.token_ids,
                                                      encoded.truncated, names):
      category_id = self._categories.get(result.category, UNKNOWN_LABEL)
      subcategory_id = self._subcategories.get(result.subcategory, UNKNOWN_LABEL)
      crop = result.crop
      stats.num_examples += 1
      stats.num_truncated += int(truncated)
      stats.num_foreground_fallback += int(not crop.foreground_found)
      stats.num_unknown_labels += int(UNKNOWN_LABEL in (category_id, subcategory_id))
      stats.num_with_name += int(bool(result.name))
      stats.product_ids.append(result.product_id)
      records.append(schema.serialize(schema.PreparedExample(
          image_id=result.image_id, product_id=result.product_id, text=result.text,
          token_ids=token_ids, name=result.name, name_token_ids=name_ids if result.name else (),
          category_id=category_id, subcategory_id=subcategory_id,
          pose=result.pose, crop_jpeg=crop.crop_jpeg, crop_box=crop.crop_box,
          image_size=(crop.image_height, crop.image_width),
          foreground_found=crop.foreground_found)))
    return records, stats


def _tasks(config: prepare_config.PrepareConfig, shards: list[int], rows_per_shard: int,
           num_rows: int, text_encoding: str,
           conflicting_rows: frozenset[int]) -> Iterator[worker.ChunkTask]:
  for shard in shards:
    start, stop = shard * rows_per_shard, min((shard + 1) * rows_per_shard, num_rows)
    for chunk_start in range(start, stop, config.chunk_rows):
      chunk_stop = min(chunk_start + config.chunk_rows, stop)
      yield worker.ChunkTask(
          catalog_path=filesystems.absolute(config.input_path), start=chunk_start, stop=chunk_stop,
          text_field=config.text_field, patch_config=config.patch, split=config.split,
          text_encoding=text_encoding,
          conflicting_rows=frozenset(row for row in conflicting_rows
                                     if chunk_start <= row < chunk_stop))


def _manifest(config: prepare_config.PrepareConfig, tokenizer: tokenizer_lib.KaleidoTokenizer,
              categories: dict[str, int], subcategories: dict[str, int],
              stats: list[ShardStats], text_encoding: str) -> manifest_lib.Manifest:
  reasons: collections.Counter = collections.Counter()
  for shard in stats:
    reasons.update(shard.skipped_reasons)
  return manifest_lib.Manifest(
      num_examples=sum(s.num_examples for s in stats),
      num_skipped=sum(reasons.values()),
      skipped_reasons=dict(sorted(reasons.items())),
      num_patches=kaleido_grid.NUM_PATCHES,
      patch_size=config.patch.patch_size,
      vocab_file=os.path.abspath(tokenizer.vocab_file),
      vocab_hash=tokenizer.vocab_hash,
      max_seq_length=config.max_seq_length,
      categories=categories,
      subcategories=subcategories,
      schema_version=schema.SCHEMA_VERSION,
      source=filesystems.absolute(config.input_path),
      text_field=config.text_field,
      foreground_method=config.patch.foreground.method,
      num_foreground_fallback=sum(s.num_foreground_fallback for s in stats),
      num_truncated=sum(s.num_truncated for s in stats),
      num_unknown_labels=sum(s.num_unknown_labels for s in stats),
      num_with_alignments=0,
      num_with_name=sum(s.num_with_name for s in stats),
      num_other_split=sum(s.num_other_split for s in stats),
      num_products=len({pid for s in stats for pid in s.product_ids}),
      shards=[{"file": s.file, "num_examples": s.num_examples, "num_bytes": s.num_bytes,
               "sha256": s.sha256} for s in stats],
      text_encoding=text_encoding)


def _check_config(config: prepare_config.PrepareConfig) -> None:
  if config.text_field not in catalog_lib.TEXT_FIELDS:
    raise PrepareError(f"--text_field={config.text_field!r} is not one of "
                       f"{', '.join(catalog_lib.TEXT_FIELDS)}.")
  if config.patch.patch_size < 8:
    raise PrepareError(f"--patch_size={config.patch.patch_size} is too small; use 8 or more "
                       "(the paper's ResNet-50 patches are typically 64 or larger).")
  if config.max_seq_length < 3:
    raise PrepareError(f"--max_seq_length={config.max_seq_length} leaves no room for text "
                       "between [CLS] and [SEP]; use 3 or more (64 by default).")
  for name in ("workers", "num_shards"):
    if getattr(config, name) < 0:
      raise PrepareError(f"--{name}={getattr(config, name)} must be >= 0 (0: "
                         f"{'in this process' if name == 'workers' else 'one per 2,048 images'}).")
  if config.chunk_rows < 1:
    raise PrepareError(f"chunk_rows={config.chunk_rows} must be >= 1.")


@dataclasses.dataclass(frozen=True)
class Plan:
  """What the first pass decided: label maps, shard layout, and the shards still to write."""
  num_rows: int
  rows_per_shard: int
  num_shards: int
  text_encoding: str
  categories: dict[str, int]
  subcategories: dict[str, int]
  conflicting_rows: frozenset[int]
  pending: tuple[int, ...]

  def chunk_tasks(self, config: prepare_config.PrepareConfig,
                  shards: Iterable[int]) -> Iterator[worker.ChunkTask]:
    """The chunks of rows of `shards`, in row order."""
    return _tasks(config, list(shards), self.rows_per_shard, self.num_rows, self.text_encoding,
                  self.conflicting_rows)

  def shard_of_row(self, row: int) -> int:
    return row // self.rows_per_shard


def plan_catalog(config: prepare_config.PrepareConfig) -> Plan:
  """The first pass over `config.input_path` (texts and labels, no images); starts or checks
  the output folder's settings, so a rerun resumes only with the same ones."""
  _check_config(config)
  tokenizer = tokenizer_lib.KaleidoTokenizer(config.vocab_file, config.max_seq_length)
  catalog = catalogs.open_catalog(config.input_path, config.text_encoding)
  try:
    num_rows = len(catalog)
    text_encoding = getattr(catalog, "text_encoding", "utf-8")
    scan = catalog_scan.scan_catalog(catalog, config.text_field)
    categories, subcategories = _label_maps(config, scan)
  finally:
    catalog.close()
  if not num_rows:
    raise PrepareError(f"Catalog {config.input_path!r} has no rows; nothing to prepare.")
  wanted_shards = config.num_shards or math.ceil(num_rows / config.rows_per_shard)
  rows_per_shard = math.ceil(num_rows / max(1, min(wanted_shards, num_rows)))
  num_shards = math.ceil(num_rows / rows_per_shard)
  os.makedirs(config.output_dir, exist_ok=True)
  files.remove_stale_temporaries(config.output_dir, os.path.join(config.output_dir, PROGRESS_DIR))
  _check_or_start(config, _settings(config, num_rows, num_shards, tokenizer.vocab_hash,
                                    categories, subcategories, text_encoding))
  finished = _finished_shards(config, num_shards)
  return Plan(num_rows=num_rows, rows_per_shard=rows_per_shard, num_shards=num_shards,
              text_encoding=text_encoding, categories=categories, subcategories=subcategories,
              conflicting_rows=scan.conflicting_rows,
              pending=tuple(s for s in range(num_shards) if s not in finished))


def example_encoder(config: prepare_config.PrepareConfig, plan: Plan) -> _ExampleEncoder:
  """The encoder of worker results into serialized examples, for `plan`'s label maps."""
  tokenizer = tokenizer_lib.KaleidoTokenizer(config.vocab_file, config.max_seq_length)
  return _ExampleEncoder(tokenizer, plan.categories, plan.subcategories)


def write_shard(config: prepare_config.PrepareConfig, plan: Plan, shard: int,
                chunks: Iterable[tuple[list[bytes], ShardStats]]) -> ShardStats:
  """Writes the encoded chunks of `shard` (in row order) atomically and records its stats."""
  writer = _ShardWriter(config, shard, plan.num_shards)
  for records, stats in chunks:
    writer.write(records, stats)
  return writer.finish()


def _write_with_process_pool(config: prepare_config.PrepareConfig, plan: Plan) -> None:
  """The local path: worker processes cut the images, this process encodes and writes."""
  done_rows = plan.num_rows - sum(min(plan.rows_per_shard, plan.num_rows - s * plan.rows_per_shard)
                                  for s in plan.pending)
  progress = progress_lib.Progress(plan.num_rows, "prepare", unit="images", initial=done_rows)
  encoder = example_encoder(config, plan)

  def encoded(chunks: Iterable[list[worker.RowResult]]) -> Iterator[tuple[list[bytes], ShardStats]]:
    for results in chunks:
      stop.raise_if_requested()  # Ctrl-C, taken between chunks (finished shards are kept)
      yield encoder.encode(results)
      progress.update(len(results))

  # closing(): on Ctrl-C or an error the worker pool shuts down here, not later in a collector.
  notice = interrupts.ctrl_c_notice("chunk", "shards")
  with interrupts.StopRequest(("SIGINT",), notice) as stop, contextlib.closing(_ordered_map(
      worker.process_chunk, plan.chunk_tasks(config, plan.pending), config.workers)) as chunks:
    for shard, of_shard in itertools.groupby(chunks, key=lambda results: plan.shard_of_row(
        results[0].index)):
      write_shard(config, plan, shard, encoded(of_shard))
  progress.close()


def finish(config: prepare_config.PrepareConfig, plan: Plan) -> manifest_lib.Manifest:
  """Writes the manifest of a folder whose shards are all written; returns it."""
  stats = _finished_shards(config, plan.num_shards)
  missing = [s for s in range(plan.num_shards) if s not in stats]
  if missing:
    raise PrepareError(f"Shards {missing[:5]} of {config.output_dir!r} were not written; rerun "
                       "the same command to finish them.")
  tokenizer = tokenizer_lib.KaleidoTokenizer(config.vocab_file, config.max_seq_length)
  manifest = _manifest(config, tokenizer, plan.categories, plan.subcategories,
                       [stats[s] for s in range(plan.num_shards)], plan.text_encoding)
  manifest_lib.save(config.output_dir, manifest)
  return manifest


def prepare_catalog(config: prepare_config.PrepareConfig) -> manifest_lib.Manifest:
  """Prepares `config.input_path` into `config.output_dir` with the local process pool;
  returns the written manifest. (kaleido.records.beam_prepare does the same on Apache Beam.)"""
  plan = plan_catalog(config)
  if plan.pending:
    _write_with_process_pool(config, plan)
  return finish(config, plan)
