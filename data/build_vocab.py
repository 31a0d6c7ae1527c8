"""Learns a lower-case WordPiece vocabulary from the product texts of a catalog.

  python data/build_vocab.py --input fashiongen_256_256_train.h5 --output vocab.txt \
      --vocab_size 8000 --text_field name_and_description

The output is a bert-base-uncased style vocab.txt for kaleido.text.tokenizer.KaleidoTokenizer.
"""

import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # Before TensorFlow is imported.

from kaleido.data import catalog as catalog_lib  # pylint: disable=wrong-import-position
from kaleido.text import vocab as vocab_lib  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Catalog to read: a Fashion-Gen .h5 or a .jsonl file.")
flags.DEFINE_string("output", None, "Vocabulary file to write, one token per line.")
flags.DEFINE_integer("vocab_size", 8000, "Largest number of tokens, special tokens included.",
                     lower_bound=len(vocab_lib.SPECIAL_TOKENS) + 1)
flags.DEFINE_enum("text_field", "name_and_description", catalog_lib.TEXT_FIELDS,
                  "Which product text to learn from.")
flags.mark_flags_as_required(["input", "output"])

READ_ROWS = 512  # Rows per catalog read; reading also decodes the images.


def read_texts(path: str, field: str) -> list[str]:
  """The `field` text of every row of the catalog at `path`."""
  catalog = catalog_lib.open_catalog(path)
  try:
    texts = []
    for start in range(0, len(catalog), READ_ROWS):
      texts += [row.text(field) for row in catalog.read(start, start + READ_ROWS)]
    return texts
  finally:
    catalog.close()


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    print(f"Unexpected arguments {argv[1:]}; pass everything as --flags.", file=sys.stderr)
    return 1
  output_dir = os.path.dirname(os.path.abspath(FLAGS.output))
  if not os.path.isdir(output_dir):
    print(f"Output directory {output_dir!r} does not exist; create it first.", file=sys.stderr)
    return 1
  started = time.time()
  try:
    texts = read_texts(FLAGS.input, FLAGS.text_field)
    tokens = vocab_lib.learn_vocab(texts, FLAGS.vocab_size)
  except (catalog_lib.CatalogError, vocab_lib.VocabError) as error:
    print(error, file=sys.stderr)
    return 1
  vocab_lib.write_vocab(FLAGS.output, tokens)
  print(f"Read {len(texts)} texts ({FLAGS.text_field}) from {FLAGS.input}.")
  print(f"Wrote {len(tokens)} tokens (--vocab_size {FLAGS.vocab_size}) to {FLAGS.output} "
        f"in {time.time() - started:.1f} s; sha256 {vocab_lib.file_sha256(FLAGS.output)}.")
  return 0


if __name__ == "__main__":
  app.run(main)
