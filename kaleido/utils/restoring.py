"""Restoring tf.train checkpoints: one clear sentence when they do not fit, and damaged files
(truncated, emptied or overwritten data, a broken index) found before anything is restored and
moved aside, so that a model_dir falls back to the newest checkpoint that reads in full."""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from typing import Callable

import tensorflow as tf
from google.protobuf import text_format

from kaleido import errors

DAMAGED_DIR = "damaged"  # where damaged checkpoints of a folder are moved, never deleted
STATE_FILE = "checkpoint"  # tf.train's list of a folder's checkpoints
_STEP = re.compile(r"ckpt-(\d+)\.index$")


def damage(path: str) -> str | None:
  """Why the checkpoint at prefix `path` cannot be read in full (every tensor is read, so the
  data files' checksums are verified), or None when it can."""
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, IndexError, ValueError) as error:
    return errors.first_line(error)
  return None


def _set_aside(path: str) -> str:
  """Moves the files of checkpoint prefix `path` into DAMAGED_DIR beside it; returns that."""
  folder = os.path.join(os.path.dirname(path), DAMAGED_DIR)
  os.makedirs(folder, exist_ok=True)
  for name in glob.glob(glob.escape(path) + ".*"):
    shutil.move(name, os.path.join(folder, os.path.basename(name)))
  return folder


def remove_unfinished_saves(directory: str) -> list[str]:
  """Deletes the `ckpt-N_temp` folders a save interrupted by a kill leaves; returns them."""
  removed = sorted(glob.glob(os.path.join(glob.escape(directory), "*_temp")))
  for path in removed:
    shutil.rmtree(path, ignore_errors=True)
  return removed


def _log_to_stderr(line: str) -> None:
  print(line, file=sys.stderr)


def _checkpoints(directory: str) -> list[tuple[int, str]]:
  """(step, prefix) of every ckpt-N checkpoint in `directory`, oldest first."""
  return sorted((int(m.group(1)), path[:-len(".index")]) for path in
                glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index"))
                if (m := _STEP.search(path)))


def repair_state_file(directory: str, log: Callable[[str], None] = _log_to_stderr) -> None:
  """Rebuilds `directory`'s checkpoint list (the `checkpoint` state file) from the checkpoint
  files there when it cannot be read (garbage, zeroed or cut) or names no checkpoint that is
  there, with one `log` sentence."""
  state = os.path.join(directory, STATE_FILE)
  if not os.path.exists(state):
    return
  prefixes = [path for _, path in _checkpoints(directory)]
  try:
    listed = tf.train.get_checkpoint_state(directory)
    newest = listed.model_checkpoint_path if listed is not None else ""
    if not prefixes or (newest and os.path.exists(newest + ".index")):
      return
    cause = f"it names {newest or 'no checkpoint'!r}"
  except (UnicodeDecodeError, ValueError, text_format.ParseError, tf.errors.OpError) as error:
    cause = errors.first_line(error)
  os.remove(state)
  if prefixes:
    tf.compat.v1.train.update_checkpoint_state(directory, prefixes[-1], prefixes)
  log(f"The checkpoint list {state} was damaged ({cause}); it was rebuilt from the "
      f"{len(prefixes)} checkpoints in that folder.")


def newest_readable(directory: str, set_aside: bool = True,
                    log: Callable[[str], None] = _log_to_stderr) -> str | None:
  """The newest checkpoint of `directory` that reads in full, or None. Newer damaged ones are
  moved to DAMAGED_DIR when `set_aside` (the chief of a run does it) and the checkpoint state
  file is rewritten to list the remaining ones; each gets one `log` sentence."""
  steps = _checkpoints(directory)
  readable, damaged = None, []
  for _, path in reversed(steps):
    cause = damage(path)
    if cause is None:
      readable = path
      break
    damaged.append(path)
    where = _set_aside(path) if set_aside else "its folder"
    log(f"The checkpoint {path} is damaged ({cause}); it was moved to {where} and the run goes "
        f"on from {'an older one' if len(steps) > len(damaged) else 'the start'}.")
  if damaged and set_aside:
    remaining = [path for _, path in steps if path not in damaged]
    if remaining:
      tf.compat.v1.train.update_checkpoint_state(directory, remaining[-1], remaining)
    elif os.path.exists(os.path.join(directory, STATE_FILE)):
      os.remove(os.path.join(directory, STATE_FILE))
  return readable


def restore(path: str, objects: dict, mismatch: str, partial: bool = True,
            error_type: type[errors.KaleidoError] = errors.KaleidoError):
  """Restores `objects` (checkpoint dependencies, e.g. {"model": model}) from `path`.

  Every existing object must be matched; with `partial`, values in the file that `objects` lack
  (optimizer slots, other heads) are ignored. A mismatch raises `error_type` with the sentence
  "The checkpoint PATH does not fit ... (first line of the cause); `mismatch`." Returns the
  load status: values still waiting for objects created later (optimizer slots) restore into
  them on creation.
  """
  try:
    status = tf.train.Checkpoint(**objects).restore(path)
    if partial:
      status = status.expect_partial()
    status.assert_existing_objects_matched()
    return status
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
    cause = str(error).splitlines()[0][:200]
    raise error_type(f"The checkpoint {path!r} does not fit ({cause}); {mismatch}.") from error


def latest_checkpoint(path: str) -> str:
  """A checkpoint prefix that reads in full, or the newest such checkpoint of a model_dir
  (damaged newer ones are moved aside, see `newest_readable`); a clear error when none."""
  if os.path.isdir(path):
    latest = newest_readable(os.path.join(path, "checkpoints"))
    if not latest:
      raise errors.KaleidoError(f"{path!r} holds no readable checkpoint; train it first with "
                                "train.py.")
    return latest
  if not os.path.exists(path + ".index"):
    raise errors.KaleidoError(f"{path!r} is neither a model_dir nor a checkpoint prefix.")
  cause = damage(path)
  if cause:
    raise errors.KaleidoError(f"The checkpoint {path!r} is damaged ({cause}); pass its model_dir "
                              "to use the newest checkpoint there that reads, or another one.")
  return path
