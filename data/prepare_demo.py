r"""Builds the embedded demo data set end to end: catalogs, vocabulary, TFRecords, a picture.

  python data/prepare_demo.py [--work_dir workdir/demo]

Writes WORK_DIR/catalog/{train,validation,development}.h5 (Fashion-Gen schema, with ground-truth
sidecars), WORK_DIR/vocab.txt, WORK_DIR/prepared/{train,validation,development}/ and
WORK_DIR/kaleido_patches.png. Tune on development, report on validation.
Steps already done are skipped, so it is safe to run again.
"""

import os

from absl import app
from absl import flags

from kaleido.utils import cli

_WORK_DIR = flags.DEFINE_string("work_dir", "workdir/demo", "Folder for everything the demo makes.")
_NUM_TRAIN = flags.DEFINE_integer("num_train_products", 600, "Products in the training catalog.")
_NUM_VALIDATION = flags.DEFINE_integer("num_validation_products", 150,
                                       "Products in the validation catalog (no overlap).")
_NUM_DEVELOPMENT = flags.DEFINE_integer(
    "num_development_products", 150, "Products of the development catalog, for tuning decisions "
    "(no overlap with the others).")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Side of each kaleido patch in pixels.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Image worker processes.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  # TensorFlow is imported here, not at the top: spawned workers re-import this script.
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  from kaleido.patches import pictures  # pylint: disable=g-import-not-at-top
  from kaleido.records import reader  # pylint: disable=g-import-not-at-top
  data = pipeline.ensure_demo_data(pipeline.DemoConfig(
      work_dir=_WORK_DIR.value, num_train_products=_NUM_TRAIN.value,
      num_validation_products=_NUM_VALIDATION.value,
      num_development_products=_NUM_DEVELOPMENT.value, patch_size=_PATCH_SIZE.value,
      workers=_WORKERS.value))
  strips = [pictures.kaleido_strip(e["patches"], caption=e["text"].decode())
            for e in reader.make_dataset(data.train_dir).take(4).as_numpy_iterator()]
  picture = os.path.join(_WORK_DIR.value, "kaleido_patches.png")
  pictures.write_png(picture, pictures.stack_rows(strips))
  print(f"Demo data ready: train {data.train_dir}, validation {data.validation_dir}, "
        f"development {data.development_dir}; "
        f"kaleido patches of 4 examples: {picture}")


if __name__ == "__main__":
  app.run(main)
