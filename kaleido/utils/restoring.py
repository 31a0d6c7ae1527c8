"""Restoring tf.train checkpoints with one clear sentence when they do not fit."""

from __future__ import annotations

import os

import tensorflow as tf

from kaleido import errors


def restore(path: str, objects: dict, mismatch: str, partial: bool = True,
            error_type: type[errors.KaleidoError] = errors.KaleidoError) -> None:
  """Restores `objects` (checkpoint dependencies, e.g. {"model": model}) from `path`.

  Every existing object must be matched; with `partial`, values in the file that `objects` lack
  (optimizer slots, other heads) are ignored. A mismatch raises `error_type` with the sentence
  "The checkpoint PATH does not fit ... (first line of the cause); `mismatch`."
  """
  try:
    status = tf.train.Checkpoint(**objects).restore(path)
    if partial:
      status = status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
    cause = str(error).splitlines()[0][:200]
    raise error_type(f"The checkpoint {path!r} does not fit ({cause}); {mismatch}.") from error


def latest_checkpoint(path: str) -> str:
  """A checkpoint prefix, or the latest checkpoint of a model_dir; clear error when none."""
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
    if not latest:
      raise errors.KaleidoError(f"{path!r} holds no checkpoint yet; train it first with train.py.")
    return latest
  if not os.path.exists(path + ".index"):
    raise errors.KaleidoError(f"{path!r} is neither a model_dir nor a checkpoint prefix.")
  return path
