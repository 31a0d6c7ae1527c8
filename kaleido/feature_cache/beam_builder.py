"""The feature cache built on Apache Beam: kaleido.feature_cache.builder's per-shard step, one
record shard per element, on any Beam runner.

Each worker makes its own frozen embedder once (`DoFn.setup`, from a picklable factory such as
`functools.partial(kaleido.pretrained.resnet.frozen_embedder, ...)`), checks it against the
cache's patch CNN fingerprint, and writes whole cache shards atomically with
`builder.build_shard`; the launching process writes cache.json first (incomplete) and last
(complete), so a retried, rerun or killed shard is simply written again.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

import apache_beam as beam
import tf_keras

from kaleido.feature_cache import builder
from kaleido.feature_cache import store
from kaleido.records import beam_prepare
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib


class _BuildShards(beam.DoFn):
  """A record shard index -> the file name of its cache shard, written if missing."""

  def __init__(self, cache_plan: builder.Plan,
               make_embedder: Callable[[], tf_keras.layers.Layer], batch_size: int):
    super().__init__()
    self._plan = cache_plan
    self._make_embedder = make_embedder
    self._batch_size = batch_size
    self._embed = None
    self._driver_pid = os.getpid()

  def setup(self):
    interrupts.become_worker(self._driver_pid)
    embedder = self._make_embedder()
    if builder.fingerprint(embedder) != self._plan.identity["patch_cnn"]:
      raise store.FeatureCacheError(
          "A Beam worker's patch embedder differs from the launching process's (other weights "
          "files on the workers?); give every worker the same --patch_cnn_weights.")
    self._embed = builder.embed_function(embedder)

  def process(self, index: int):
    name = os.path.basename(self._plan.output_path(index))
    if not os.path.exists(self._plan.output_path(index)):
      progress = progress_lib.Progress(self._plan.num_examples[index], f"feature cache {name}",
                                       unit="images")
      builder.build_shard(self._plan, index, self._embed, self._batch_size, progress)
      progress.close()
      print(f"feature cache: wrote {name}", file=sys.stderr, flush=True)
    yield name


def build(cache_plan: builder.Plan, make_embedder: Callable[[], tf_keras.layers.Layer],
          batch_size: int = 16, runner: str = "DirectRunner", options: Sequence[str] = (),
          workers: int = 1) -> store.FeatureCache:
  """builder.build with the missing shards written by a Beam pipeline on `runner` (given its
  command-line `options`; a DirectRunner gets `workers` processes); reuses a complete cache."""
  cache = store.load(cache_plan.folder, cache_plan.identity)
  if cache is not None:
    return cache
  builder.start(cache_plan)
  beam_prepare.run_over_shards(cache_plan.pending(),
                               _BuildShards(cache_plan, make_embedder, batch_size), "Embed",
                               runner, options, workers)
  return builder.finish(cache_plan)
