r"""Storage choice and input-pipeline speed of the prepared TFRecords (a benchmark, not a test).

  python bench/bench_records.py --num_products 300 --patch_size 64

Prints, per example, the bytes of the stored product crop (what the project stores) against the
bytes of 55 separately JPEG-encoded patches (the alternative), and the reader's examples/s when it
cuts the 55 patches in tf.data.
"""

import os
import tempfile
import time

from absl import app
from absl import flags

_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 300, "Demo catalog size.")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Patch side.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Reader batch size.")
_SEED = flags.DEFINE_integer("seed", 0, "Demo catalog seed.")


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido.demo import generator as demo  # pylint: disable=g-import-not-at-top
  from kaleido.patches import generator  # pylint: disable=g-import-not-at-top
  from kaleido.records import prepare  # pylint: disable=g-import-not-at-top
  from kaleido.records import prepare_config  # pylint: disable=g-import-not-at-top
  from kaleido.records import reader  # pylint: disable=g-import-not-at-top
  from kaleido.records import schema  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    catalog_path = os.path.join(tmp, "demo.h5")
    demo.make_demo_catalog(catalog_path, _NUM_PRODUCTS.value, _SEED.value)
    vocab_file = os.path.join(tmp, "vocab.txt")
    vocab.write_vocab(vocab_file, vocab.learn_vocab(vocab.catalog_texts(catalog_path, "description"), 4000))
    output_dir = os.path.join(tmp, "prepared")
    manifest = prepare.prepare_catalog(prepare_config.PrepareConfig(
        input_path=catalog_path, output_dir=output_dir, vocab_file=vocab_file,
        patch=generator.PatchConfig(patch_size=_PATCH_SIZE.value), workers=2))

    crop_bytes, patch_bytes, record_bytes = [], [], []
    config = reader.reader_config(manifest)
    for serialized in tf.data.TFRecordDataset(manifest.shard_paths(output_dir)):
      parsed = schema.parse(serialized)
      crop_bytes.append(len(parsed["crop_jpeg"].numpy()))
      record_bytes.append(len(serialized.numpy()))
      patches = reader.decode(serialized, config)["patches"].numpy()
      patch_bytes.append(sum(len(generator.encode_jpeg(p, 95)) for p in patches))
    crop, patches, record = (float(np.mean(v)) for v in (crop_bytes, patch_bytes, record_bytes))
    print(f"examples={manifest.num_examples} patch_size={_PATCH_SIZE.value}")
    print(f"stored crop JPEG: {crop:.0f} B/example (whole record {record:.0f} B); "
          f"55 patch JPEGs: {patches:.0f} B/example; ratio {patches / crop:.1f}x")
    print(f"projected for 260,480 Fashion-Gen training images: crop {record * 260480 / 1e9:.2f} GB,"
          f" 55 patches {(record - crop + patches) * 260480 / 1e9:.2f} GB")

    dataset = reader.make_dataset(output_dir, batch_size=_BATCH_SIZE.value, shuffle=True,
                                  repeat=True, seed=0)
    iterator = iter(dataset)
    next(iterator)
    steps, start = 30, time.monotonic()
    for _ in range(steps):
      next(iterator)
    rate = steps * _BATCH_SIZE.value / (time.monotonic() - start)
    print(f"reader (decode JPEG + cut 55 patches, {os.cpu_count()} cpus): {rate:.0f} examples/s")


if __name__ == "__main__":
  app.run(main)
