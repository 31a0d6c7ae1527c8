r"""Writes a PNG of the 55 kaleido patches (L1..L5 panels) of a few prepared examples.

  python tools/show_patches.py --data prepared/train --output patches.png [--count 6]
"""

import sys

from absl import app
from absl import flags

from kaleido.utils import cli

_DATA = flags.DEFINE_string("data", None, "A folder written by data/prepare.py.")
_OUTPUT = flags.DEFINE_string("output", "kaleido_patches.png", "PNG to write.")
_COUNT = flags.DEFINE_integer("count", 6, "Examples to show.")
_SKIP = flags.DEFINE_integer("skip", 0, "Examples to skip first.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido.patches import pictures  # pylint: disable=g-import-not-at-top
  from kaleido.records import reader  # pylint: disable=g-import-not-at-top
  dataset = reader.make_dataset(_DATA.value).skip(_SKIP.value).take(_COUNT.value)
  strips = []
  for example in dataset.as_numpy_iterator():
    caption = (f"{example['product_id'].decode()} / {example['image_id'].decode()}: "
               f"{example['text'].decode()}")
    strips.append(pictures.kaleido_strip(example["patches"], caption=caption))
  if not strips:
    print(f"error: {_DATA.value!r} has no examples to show.", file=sys.stderr)
    sys.exit(1)
  image = pictures.stack_rows(strips)
  pictures.write_png(_OUTPUT.value, image)
  print(f"Wrote {len(strips)} examples to {_OUTPUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["data"])
  app.run(main)
