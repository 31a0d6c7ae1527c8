"""tf.distribute strategies and how batches reach their replicas.

The global batch is always `batch_size`. Two ways to feed it:
- "global" (default on one machine): one pipeline builds each global batch and hands consecutive
  slices to the replicas. The batch content does not depend on the number of replicas, so a run on
  8 GPUs sees exactly the examples (and in-batch negatives) of a run on one device.
- "files" (default for multi-worker): every worker reads its own TFRecord shards and builds only
  its share, global_batch / num_workers examples, so no input work is repeated across machines.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors


# (global_batch_size, input_context or None) -> dataset of dict batches: whole global batches
# without a context, this pipeline's per-replica batches with one.
DatasetFn = Callable[[int, tf.distribute.InputContext | None], tf.data.Dataset]


def create_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
  """The strategy called `name`; `multi_worker_mirrored` reads the cluster from TF_CONFIG."""
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) == 1 and not gpus:
      print("--strategy=mirrored found no GPU on this machine: training on one replica, the "
            "CPU.", file=sys.stderr)
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    return _tpu_strategy(tpu_address)
  raise errors.KaleidoError(f"--strategy={name!r} is not one of {', '.join(config_lib.STRATEGIES)}.")


def _tpu_strategy(tpu_address: str) -> tf.distribute.Strategy:
  """TPUStrategy on the TPU at `tpu_address` (a name, or grpc://host:port; "" on a TPU VM)."""
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as error:
    raise errors.KaleidoError(
        f"--strategy=tpu found no TPU at --tpu={tpu_address!r} ({str(error).splitlines()[0]}); "
        "pass the TPU's name or grpc:// address with --tpu, or use --strategy=one_device or "
        "mirrored on this machine.") from error
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints and summaries (always, outside multi-worker)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  cluster = resolver.cluster_spec().as_dict() if resolver else {}
  if not cluster:
    return True
  if resolver.task_type == "chief":
    return True
  return "chief" not in cluster and resolver.task_type == "worker" and resolver.task_id == 0


def worker_index(strategy: tf.distribute.Strategy) -> int:
  """This process's place among the workers of a multi-worker run (the chief first); 0
  outside one."""
  resolver = getattr(strategy, "cluster_resolver", None)
  cluster = resolver.cluster_spec().as_dict() if resolver else {}
  if not cluster:
    return 0
  after_chief = int("chief" in cluster and resolver.task_type != "chief")
  return (resolver.task_id or 0) + after_chief


def writer_dir(strategy: tf.distribute.Strategy, model_dir: str) -> str:
  """`model_dir` for the chief; a private scratch folder inside it for the other workers, which
  must still take part in saving but whose copies are thrown away."""
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, f".scratch-{resolver.task_type}-{resolver.task_id}")


def _slices(batch: dict, count: int) -> tf.data.Dataset:
  """A global batch -> `count` consecutive equal slices, as a dataset of `count` elements."""
  return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
      lambda t: tf.reshape(t, tf.concat([[count, -1], tf.shape(t)[1:]], 0)), batch))


def distribute_dataset(strategy: tf.distribute.Strategy, dataset_fn: DatasetFn,
                       global_batch_size: int, mode: str = "auto"):
  """A distributed dataset of `dataset_fn` batches, `global_batch_size` examples per step."""
  if mode not in config_lib.INPUT_MODES:
    raise errors.KaleidoError(f"Input mode {mode!r} is not one of {', '.join(config_lib.INPUT_MODES)}.")
  if mode == "auto":
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    mode = "files" if multi_worker else "global"
  replicas = strategy.num_replicas_in_sync

  def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
    local = replicas // context.num_input_pipelines
    if mode == "files":
      return dataset_fn(global_batch_size, context)
    first = context.input_pipeline_id * local
    dataset = dataset_fn(global_batch_size, None)
    return dataset.flat_map(
        lambda batch: _slices(batch, replicas).skip(first).take(local)).prefetch(2)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(pipeline, options)
