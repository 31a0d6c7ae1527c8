r"""Prints every scalar a training run wrote to TensorBoard: its training curve (first, last and
best value) beside its held-out one (`validation/<name>`, last and best), one row per figure.

  python tools/summarize_run.py --model_dir runs/demo_pretrain
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from kaleido.training.event_files import read_scalars
from kaleido.training.event_files import summary_table

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The --model_dir of a train.py run.")


def main(argv):
  del argv
  series = read_scalars(_MODEL_DIR.value)
  if not series:
    print(f"error: {_MODEL_DIR.value!r} has no TensorBoard events under train/; pass the "
          "--model_dir of a train.py run.", file=sys.stderr)
    sys.exit(1)
  print("\n".join(summary_table(series)))


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
