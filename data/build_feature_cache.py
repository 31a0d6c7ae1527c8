r"""Computes the feature cache of a prepared folder for a frozen patch CNN, ahead of training.

  # the paper's ImageNet ResNet-50, before any run exists (64-pixel patches of the folder):
  python data/build_feature_cache.py --data prepared/train --patch_cnn resnet50 \
      --patch_cnn_weights weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5
  # the frozen patch CNN of a train.py run (its kind, size and weights from its model_dir):
  python data/build_feature_cache.py --data workdir/demo/prepared/validation --run runs/demo_pretrain
  # on Apache Beam (one record shard per element), e.g. locally with 2 worker processes:
  python data/build_feature_cache.py --data prepared/train --patch_cnn_weights ... \
      --runner=DirectRunner --workers=2

train.py, evaluate.py and tools/build_index.py build the same cache on first use whenever the
patch CNN is frozen (kaleido.feature_cache); this tool builds it beforehand, on a Beam cluster if
wanted, and they then find it complete and reuse it. The cache is keyed by the patch CNN weights'
fingerprint and the records' digests: a cache for other weights or other records is never read.
Interrupted builds (kill -9 included) resume at the missing shards.
"""

import functools
import os

from absl import app
from absl import flags

from kaleido import config as config_lib
from kaleido import errors
from kaleido.records import beam_flags
from kaleido.utils import cli
# pylint: enable=g-import-not-at-top,wrong-import-position

_DATA = flags.DEFINE_string("data", None, "A folder prepared by data/prepare.py.")
_RUN = flags.DEFINE_string("run", "", "A train.py --model_dir (or one of its checkpoints) whose "
                           "frozen patch CNN computes the features.")
_PATCH_CNN = flags.DEFINE_enum("patch_cnn", "resnet50", list(config_lib.CNNS),
                               "Without --run: the patch CNN.")
_PATCH_CNN_WEIGHTS = flags.DEFINE_string(
    "patch_cnn_weights", "", "Without --run: its weights (the Keras ImageNet .h5 file for "
    "resnet50, a .h5 of tools/pretrain_patch_cnn.py, or a checkpoint); empty: random weights.")
_FEATURE_SIZE = flags.DEFINE_integer("feature_size", 2048, "Without --run: the patch CNN's "
                                     "feature size (2048 for resnet50).")
_FEATURE_CACHE_DIR = flags.DEFINE_string(
    "feature_cache_dir", "", "Where caches go (default: a feature_cache folder inside --data); "
    "train.py's --feature_cache_dir must name the same place to find it.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images embedded at once (x 74 patches).")
_WORKERS = flags.DEFINE_integer("workers", 2, "With --runner=DirectRunner: its worker processes.")
beam_flags.define_runner_flags()
flags.mark_flags_as_required(["data"])


def _embedder_factory(patch_size: int):
  """(a picklable factory of the frozen embedder, its description)."""
  from kaleido.pretrained import resnet  # pylint: disable=g-import-not-at-top
  if _RUN.value:
    from kaleido.utils import restoring  # pylint: disable=g-import-not-at-top
    model = config_lib.load(_RUN.value).model
    if model.patch_cnn_trainable:
      raise errors.KaleidoError(
          f"--run={_RUN.value!r} trained its patch CNN (--patch_cnn_trainable), so no cache "
          "holds its features; cached features need a frozen patch CNN.")
    return (functools.partial(resnet.frozen_embedder, model.patch_cnn, patch_size,
                              model.feature_size, restoring.latest_checkpoint(_RUN.value)),
            f"the {model.patch_cnn} patch CNN of {_RUN.value}")
  weights = resnet.resolve_resnet_weights(_PATCH_CNN_WEIGHTS.value) or ""
  return (functools.partial(resnet.frozen_embedder, _PATCH_CNN.value, patch_size,
                            _FEATURE_SIZE.value, weights),
          f"the {_PATCH_CNN.value} patch CNN with {weights or 'random weights'}")


@cli.user_errors_as_messages
def main(argv):
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  if _BATCH_SIZE.value < 1:
    raise errors.KaleidoError(f"--batch_size={_BATCH_SIZE.value} must be at least 1.")
  beam = beam_flags.beam_runner()
  from kaleido.feature_cache import builder  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  make_embedder, described = _embedder_factory(manifest_lib.load(_DATA.value).patch_size)
  embedder = make_embedder()
  cache_plan = builder.plan(_DATA.value, builder.fingerprint(embedder),
                            embedder.get_config()["feature_size"], _FEATURE_CACHE_DIR.value)
  if beam:
    from kaleido.feature_cache import beam_builder  # pylint: disable=g-import-not-at-top
    cache = beam_builder.build(cache_plan, make_embedder, _BATCH_SIZE.value, *beam,
                               workers=_WORKERS.value)
  else:
    cache = builder.build(cache_plan, builder.embed_function(embedder), _BATCH_SIZE.value)
  size = sum(os.path.getsize(path) for path in cache.shard_paths)
  print(f"Feature cache of {_DATA.value} for {described}: {cache.folder} "
        f"({len(cache.shard_paths)} shards, {size / 2**20:.1f} MiB).")


if __name__ == "__main__":
  app.run(main)
