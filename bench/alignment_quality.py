r"""Alignment precision and recall of the AAG against the demo catalog's ground truth, next to
random pairing (criteria and baseline: kaleido/alignment/quality.py).

  python bench/alignment_quality.py --data workdir/demo/prepared/validation \
      --aag_checkpoint runs/aag_demo [--decoding greedy|beam] [--catalog CATALOG.h5]

With --aag_checkpoint the pairs are computed on the fly (the folder is not changed); without it
the pairs stored in --data (by data/add_alignments.py) are measured. The ground truth is the
sidecar of --catalog (default: the catalog the folder was prepared from).
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from kaleido import errors
from kaleido.alignment import flags as align_flags
from kaleido.alignment import generator as generator_lib
from kaleido.alignment import inputs
from kaleido.alignment import quality
from kaleido.demo import groundtruth
from kaleido.text import vocab as vocab_lib
from kaleido.utils import cli
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "workdir/demo/prepared/validation", "Prepared demo folder.")
flags.DEFINE_string("catalog", "", "Catalog with a ground-truth sidecar (default: the folder's "
                    "source catalog).")
flags.DEFINE_string("aag_checkpoint", "", "Compute pairs with this generator (default: measure "
                    "the pairs stored in --data).")
flags.DEFINE_integer("batch_size", 64, "Crops captioned at once.")
flags.DEFINE_integer("random_draws", 20, "Random pairings averaged for the baseline.")
flags.DEFINE_integer("seed", 0, "Seed of the random pairings.")
align_flags.define_align_flags()
flags.adopt_module_key_flags(align_flags)


def _fields(serialized: bytes) -> dict:
  feature = tf.train.Example.FromString(serialized).features.feature
  return {"image_id": feature["image_id"].bytes_list.value[0].decode(),
          "token_ids": list(feature["token_ids"].int64_list.value),
          "crop_box": list(feature["crop_box"].float_list.value),
          "image_size": tuple(feature["image_size"].int64_list.value),
          "align_token": list(feature["align_token"].int64_list.value),
          "align_patch": list(feature["align_patch"].int64_list.value)}


def _truths(catalog: str) -> dict[str, groundtruth.ImageTruth]:
  try:
    truths = groundtruth.load(catalog)
  except (OSError, ValueError) as error:
    raise errors.KaleidoError(f"Cannot read the ground truth of {catalog!r} ({error}); pass a "
                              "demo catalog (data/make_demo.py) with --catalog.") from error
  stem = os.path.splitext(os.path.basename(catalog))[0]
  return {f"{stem}:{truth.row}": truth for truth in truths}


def _batches(folder: str, aligner: generator_lib.AlignmentGenerator | None, batch_size: int):
  """(fields, align_token, align_patch) per example, stored or computed."""
  paths = inputs.load_prepared(folder).shard_paths(folder)
  if aligner is None:
    for serialized in tf.data.TFRecordDataset(paths).as_numpy_iterator():
      fields = _fields(serialized)
      yield fields, fields["align_token"], fields["align_patch"]
    return
  for batch in inputs.example_dataset(paths, aligner.captioner_config, batch_size):
    fields = [_fields(s) for s in batch["serialized"].numpy()]
    results = aligner.align(batch["image"].numpy(), [f["token_ids"] for f in fields])
    for item, result in zip(fields, results):
      yield item, result.alignment.align_token, result.alignment.align_patch


def _row(name: str, tally: quality.Tally, kind: str) -> str:
  def pct(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{100 * value:5.1f}%"

  precision, random = tally.precision(kind), tally.precision(kind, random=True)
  ratio = f"{precision / random:5.1f}x" if random > 0 and not math.isnan(precision) else "   - "
  return (f"{name:10s} {int(tally.links[kind]):6d} {pct(precision)} {pct(random)} {ratio} | "
          f"{pct(tally.precision(kind, 'centre'))} {pct(tally.precision(kind, 'centre', True))}"
          f" | {int(tally.items[kind]):6d} {pct(tally.recall(kind))} "
          f"{pct(tally.recall(kind, random=True))}")


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  started = time.time()
  manifest = inputs.load_prepared(FLAGS.data)
  truths = _truths(FLAGS.catalog or manifest.source)
  tokens = vocab_lib.read_vocab(manifest.vocab_file)
  align_config = align_flags.align_config()
  aligner = (generator_lib.AlignmentGenerator.from_checkpoint(
      FLAGS.aag_checkpoint, align_config, manifest, FLAGS.data) if FLAGS.aag_checkpoint else None)
  evaluator = quality.Evaluator(quality.Evaluator.catalog_kinds(list(truths.values())),
                                FLAGS.random_draws, FLAGS.seed)
  missing = 0
  for fields, align_token, align_patch in _batches(FLAGS.data, aligner, FLAGS.batch_size):
    truth = truths.get(fields["image_id"])
    if truth is None:
      missing += 1
      continue
    evaluator.add(quality.truth_words(truth, fields["image_size"]),
                  [tokens[i] for i in fields["token_ids"]], fields["crop_box"],
                  np.asarray(align_token), np.asarray(align_patch))
  tally = evaluator.tally
  source = (f"checkpoint {FLAGS.aag_checkpoint}, {align_config}" if aligner
            else f"pairs stored in {FLAGS.data}")
  print(f"alignment quality of {FLAGS.data}: {tally.examples} examples, "
        f"{tally.examples_with_links} with links; {source}")
  print("kind        links  precision (overlap)  | centre in box | recall (overlap)")
  print("                    AAG  random  ratio  |  AAG  random  |  items   AAG  random")
  kinds = sorted(k for k in tally.links if k != quality.ALL_KINDS)
  for kind in kinds:
    print(_row(kind, tally, kind))
  print(_row(quality.ALL_KINDS, tally, quality.ALL_KINDS))
  best = tally.best_precision(quality.ALL_KINDS)
  print(f"ceiling (a perfect patch choice for the same words and levels): precision "
        f"{100 * best:.1f}%, {best / tally.precision(quality.ALL_KINDS, random=True):.1f}x random; "
        + ", ".join(f"{kind} {100 * tally.best_precision(kind):.1f}%" for kind in kinds))
  print(f"links of words boxed elsewhere but not in their image (counted wrong): "
        f"{tally.absent_links}; links of words without any ground truth (not judged): "
        f"{tally.unjudged_links}; examples without ground truth: {missing}")
  print(f"time {time.time() - started:.0f} s")


if __name__ == "__main__":
  app.run(main)
