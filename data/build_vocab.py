"""Learns a lower-case WordPiece vocabulary from the product texts of a catalog.

  python data/build_vocab.py --input fashiongen_256_256_train.h5 --output vocab.txt \
      --vocab_size 8000 --text_field name_and_description

The output is a bert-base-uncased style vocab.txt for kaleido.text.tokenizer.KaleidoTokenizer.
"""

import os
import time

from absl import app
from absl import flags

from kaleido import errors
from kaleido.data import catalog as catalog_lib
from kaleido.text import vocab as vocab_lib
from kaleido.utils import cli
from kaleido.utils import files

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Catalog to read: a Fashion-Gen .h5 or a .jsonl file.")
flags.DEFINE_string("output", None, "Vocabulary file to write, one token per line.")
flags.DEFINE_integer("vocab_size", 8000, "Largest number of tokens, special tokens included.",
                     lower_bound=len(vocab_lib.SPECIAL_TOKENS) + 1)
flags.DEFINE_enum("text_field", "name_and_description", catalog_lib.TEXT_FIELDS,
                  "Which product text to learn from.")
flags.DEFINE_integer("vocab_sample_size", 1_000_000, "Learn from at most this many texts, "
                     "drawn at random (seeded) from a larger catalog; 0: every text.",
                     lower_bound=0)
flags.DEFINE_integer("vocab_sample_seed", 0, "Seed of the --vocab_sample_size draw.")
flags.mark_flags_as_required(["input", "output"])


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  output_dir = os.path.dirname(os.path.abspath(FLAGS.output))
  if not os.path.isdir(output_dir):
    raise errors.KaleidoError(f"Output directory {output_dir!r} does not exist; create it first.")
  started = time.time()
  texts = vocab_lib.catalog_texts(FLAGS.input, FLAGS.text_field,
                                  sample_size=FLAGS.vocab_sample_size,
                                  seed=FLAGS.vocab_sample_seed)
  tokens = vocab_lib.learn_vocab(texts, FLAGS.vocab_size)
  vocab_lib.write_vocab(FLAGS.output, tokens)
  print(f"Read {len(texts)} texts ({FLAGS.text_field}) from {FLAGS.input}.")
  print(f"Wrote {len(tokens)} tokens (--vocab_size {FLAGS.vocab_size}) to {FLAGS.output} "
        f"in {time.time() - started:.1f} s; sha256 {files.file_sha256(FLAGS.output)}.")


if __name__ == "__main__":
  app.run(main)
