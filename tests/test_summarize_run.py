"""The run summary (tools/summarize_run.py) puts each held-out figure beside its training curve."""

import tensorflow as tf

from kaleido.training.event_files import read_scalars
from kaleido.training.event_files import summary_table


def test_validation_figures_sit_beside_the_training_ones(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path / "train"))
  with writer.as_default():
    for step, (train, held_out) in enumerate([(0.9, 0.8), (0.5, 0.7), (0.6, 0.75)], start=1):
      tf.summary.scalar("loss/itm", train, step=step)
      tf.summary.scalar("validation/itm", held_out, step=step)
      tf.summary.scalar("accuracy/itm_accuracy", 1 - train, step=step)
  writer.flush()
  rows = summary_table(read_scalars(str(tmp_path)))
  assert len(rows) == 3  # the header, loss/itm, accuracy/itm_accuracy
  itm = next(row for row in rows if row.startswith("loss/itm")).split()
  # training: first 0.9 (step 1), last 0.6 (step 3), best 0.5; validation: last 0.75, best 0.7
  assert itm[1:] == ["0.9000", "(", "1)", "0.6000", "(", "3)", "0.5000", "0.7500", "(",
                     "3)", "0.7000"]
  accuracy = next(row for row in rows if row.startswith("accuracy/")).split()
  assert accuracy[-1] == "0.5000" and len(accuracy) == 8  # best is the highest; no held-out
