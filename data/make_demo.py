r"""Writes a synthetic demo catalog in the Fashion-Gen schema, with its ground-truth sidecar.

  python data/make_demo.py --output demo/catalog.h5 --num_products 500 --seed 0 \
      [--first_product 0] [--image_size 256] [--format h5|jsonl]

Without --format, the format follows the extension of --output (.jsonl: JSON lines and PNG files,
otherwise Fashion-Gen HDF5). The same seed always writes the same catalog.
"""

from absl import app
from absl import flags

from kaleido.demo import generator
from kaleido.utils import cli

_OUTPUT = flags.DEFINE_string("output", None, "Catalog to write: a .h5 or .jsonl path.")
_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 200, "Products to generate (1 to 4 images "
                                     "each).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the same seed writes the same catalog.")
_FIRST_PRODUCT = flags.DEFINE_integer(
    "first_product", 0, "Index of the first product; ranges of one seed that do not overlap make "
    "train/validation splits that share no product.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 256, "Side of the square images in pixels.")
_FORMAT = flags.DEFINE_string("format", None,
                              f"One of {', '.join(generator.FORMATS)}; default: from --output.")
flags.mark_flag_as_required("output")


def _format(output: str) -> str:
  if _FORMAT.value:
    return _FORMAT.value
  return "jsonl" if output.lower().endswith(".jsonl") else "h5"


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  del argv
  summary = generator.make_demo_catalog(_OUTPUT.value, _NUM_PRODUCTS.value, _SEED.value,
                                        _IMAGE_SIZE.value, _format(_OUTPUT.value),
                                        _FIRST_PRODUCT.value)
  print(f"Wrote {summary.num_products} products, {summary.num_images} images, "
        f"{summary.num_categories} categories, {summary.num_subcategories} subcategories to "
        f"{summary.path} (ground truth: {summary.groundtruth_path}).")


if __name__ == "__main__":
  app.run(main)
