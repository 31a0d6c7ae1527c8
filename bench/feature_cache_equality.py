r"""The losses of the same pre-training run from pixels and from the float16 feature cache (a
measurement, not a test; tests/test_feature_cache.py asserts the same on a tiny model).

  python bench/feature_cache_equality.py [--data workdir/demo/prepared/train] [--steps 30]

Trains the demo's model (configs/demo_pretrain.flags sizes: H=128, 3 layers, the small patch CNN
at random weights, batch 32, dropout 0.1) for --steps steps twice from the same seed, once with
--patch_features=pixels and once with cached, and prints every loss at the last step with the
relative difference, and the largest feature magnitude in the cache (float16 holds up to 65,504).
"""

import os
import tempfile

from absl import app
from absl import flags

_DATA = flags.DEFINE_string("data", "", "A prepared folder (default: a fresh demo one).")
_STEPS = flags.DEFINE_integer("steps", 30, "Training steps of each run.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Global batch size.")


def _last_losses(data: str, patch_features: str, model_dir: str) -> dict[str, float]:
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  manifest = manifest_lib.load(data)
  config = config_lib.validate(config_lib.ExperimentConfig(
      data=config_lib.DataConfig(train_data=data, vocab_file=manifest.vocab_file,
                                 vocab_hash=manifest.vocab_hash,
                                 max_seq_length=manifest.max_seq_length,
                                 patch_size=manifest.patch_size, patch_features=patch_features,
                                 feature_cache_dir=os.path.join(model_dir, "..", "cache")),
      model=config_lib.KaleidoBertConfig(
          vocab_size=len(vocab.read_vocab(manifest.vocab_file)), hidden_size=128, num_layers=3,
          num_heads=4, intermediate_size=512, patch_cnn="small",
          max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size),
      optimizer=config_lib.OptimizerConfig(learning_rate=1e-3, warmup_steps=10),
      training=config_lib.TrainingConfig(model_dir=model_dir, train_steps=_STEPS.value,
                                         batch_size=_BATCH_SIZE.value, summary_every=1,
                                         checkpoint_every=10_000)))
  return trainer.Trainer(config, factory.create_task(config)).run().losses


def _largest_feature(cache_root: str) -> float:
  import glob  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.feature_cache import store  # pylint: disable=g-import-not-at-top
  (folder,) = glob.glob(os.path.join(cache_root, "*"))
  info = store.read_info(folder)
  cache = store.load(folder, {})
  largest = 0.0
  for path in cache.shard_paths:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    for record in tf.data.TFRecordDataset(path):
      values = store.parse(record, info["feature_size"])["patch_variants"].numpy()
      largest = max(largest, float(np.abs(values.astype(np.float32)).max()))
  return largest


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    data = _DATA.value
    if not data:
      from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
      data = pipeline.ensure_demo_data(pipeline.DemoConfig(work_dir=tmp), log=lambda _: None
                                       ).train_dir
    pixels = _last_losses(data, "pixels", os.path.join(tmp, "pixels"))
    cached = _last_losses(data, "cached", os.path.join(tmp, "cached"))
    print(f"{_STEPS.value} steps, batch {_BATCH_SIZE.value}; loss at the last step:")
    for name in sorted(pixels):
      difference = abs(cached[name] - pixels[name]) / max(abs(pixels[name]), 1e-12)
      print(f"  {name:14s} pixels {pixels[name]:.6f}  cached {cached[name]:.6f}  "
            f"relative difference {difference:.2e}")
    print(f"largest |feature| in the cache: {_largest_feature(os.path.join(tmp, 'cache')):.2f}")


if __name__ == "__main__":
  app.run(main)
