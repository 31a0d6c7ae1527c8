r"""Crash test: SIGKILL data preparation and training at random moments, resume, check the result
(a benchmark others can rerun, not a timed test).

  python bench/crash_test.py [--seed 0] [--kills 8]

Preparation: an uninterrupted reference run, then a run killed --kills times and rerun each
time, then finished; its shards must be byte-identical to the reference's and no process of a
killed run may be left. Training: a tiny model on the prepared data, killed the same way and
rerun; it must reach --train_steps, every checkpoint left must read in full with finite values,
and no process may be left. The kills land anywhere in the work: one at a random moment of the
start-up (before the first progress line), the others inside the work each rerun has left, at a
random share of it (read from the command's own progress lines, on a pseudo-terminal so that
they come every 0.5 s) drawn so that work is left for the kills after it, plus a random part of
0.5 s. Prints one line per kill (with the progress it cut) and a summary; every kill must cut
work.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pty
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterator

from absl import app
from absl import flags
import numpy as np
import psutil

_KILLS = flags.DEFINE_integer("kills", 8, "SIGKILLs per phase.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 1500, "Demo catalog products (the demo's "
                                     "training split has 600).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 200, "Training steps of the tiny model.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to work (default: a temporary folder).")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepare_args(catalog: str, vocab: str, output_dir: str) -> list[str]:
  return [sys.executable, os.path.join(REPO_ROOT, "data", "prepare.py"), f"--input={catalog}",
          f"--output_dir={output_dir}", f"--vocab_file={vocab}", "--workers=2",
          "--num_shards=8", "--patch_size=32"]


def _train_args(data: str, model_dir: str) -> list[str]:
  return [sys.executable, os.path.join(REPO_ROOT, "train.py"), f"--train_data={data}",
          f"--model_dir={model_dir}", "--backbone=small", "--resnet_weights=random",
          "--hidden_size=64", "--num_layers=2", "--num_heads=2", "--intermediate_size=256",
          "--batch_size=32", f"--train_steps={_TRAIN_STEPS.value}", "--checkpoint_every=5",
          "--warmup_steps=0", "--learning_rate=1e-3", "--summary_every=5"]


_PROGRESS_INTERVAL = 0.5  # seconds between progress lines on a terminal
PROGRESS = re.compile(r" (\d+)/(\d+) \(")  # kaleido.utils.progress: "name 17/1000 (1.7%) ..."


def _spawn(args: list[str]) -> tuple[subprocess.Popen, Iterator[str]]:
  """Starts `args` with its stderr on a pseudo-terminal, so that its progress lines come every
  0.5 s (kaleido.utils.progress; 15 s into a pipe); returns it and an iterator of those lines."""
  leader, follower = pty.openpty()
  process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower)
  os.close(follower)

  def lines() -> Iterator[str]:
    pending = ""
    while True:
      try:
        chunk = os.read(leader, 4096).decode(errors="replace")
      except OSError:  # the terminal closes when the process ends
        chunk = ""
      if not chunk:
        break
      *complete, pending = re.split(r"[\r\n]", pending + chunk)
      yield from complete
    yield pending
    os.close(leader)

  return process, lines()


def _run_to_end(args: list[str]) -> tuple[float, float]:
  """Runs `args` to the end; returns (seconds in all, seconds until its first progress line,
  i.e. its start-up)."""
  start = time.monotonic()
  process, lines = _spawn(args)
  startup, tail = None, []
  for line in lines:
    if startup is None and PROGRESS.search(line):
      startup = time.monotonic() - start
    tail = (tail + [line])[-40:]
  if process.wait():
    raise SystemExit(f"{' '.join(args[:2])} failed:\n{chr(10).join(tail)}")
  duration = time.monotonic() - start
  return duration, duration * 0.4 if startup is None else startup


@dataclasses.dataclass
class _Progress:
  """What a command's progress lines said: units done when it started work, last, and in all."""
  initial: int | None = None
  done: int = 0
  total: int = 0


def _kill_at(args: list[str], share: float, delay: float, startup: float | None
             ) -> tuple[_Progress | None, int]:
  """Starts `args` and SIGKILLs it `delay` s after its progress lines report the `share` of the
  work it had left done (or, with `startup`, that many seconds after it starts, before any
  progress). Returns its progress when killed (None when it finished first) and how many of its
  processes outlived it by 15 s."""
  process, lines = _spawn(args)
  parent = psutil.Process(process.pid)
  progress = _Progress()
  reached = threading.Event()

  def read_progress():
    for line in lines:
      if match := PROGRESS.search(line):
        progress.done, progress.total = int(match.group(1)), int(match.group(2))
        if progress.initial is None:
          progress.initial = progress.done
        if progress.done >= progress.initial + share * (progress.total - progress.initial):
          reached.set()

  threading.Thread(target=read_progress, daemon=True).start()
  family: dict[int, psutil.Process] = {}
  deadline = time.monotonic() + startup if startup is not None else None
  while process.poll() is None:
    try:
      family.update({child.pid: child for child in parent.children(recursive=True)})
    except psutil.Error:
      pass
    if deadline is None and reached.is_set():
      deadline = time.monotonic() + delay
    if deadline is not None and time.monotonic() >= deadline:
      break
    time.sleep(0.02)
  if process.poll() is not None:
    return None, 0
  process.send_signal(signal.SIGKILL)
  process.wait()
  _, alive = psutil.wait_procs(list(family.values()), timeout=15)
  for leftover in alive:
    leftover.kill()
  return progress, len(alive)


def _crash_phase(name: str, args: list[str], startup: float, rng: random.Random
                 ) -> tuple[int, int]:
  """Kills `args` --kills times: once at a random moment of its `startup` (seconds before the
  first progress line), the other times inside the work each rerun has left, at a random share
  of it drawn so that work is left for the kills after it (the j-th of m within the first
  1 / (m - j) of what is left), plus a random part of the time between two progress lines.
  Returns (processes left, kills that found it finished)."""
  work_kills = _KILLS.value - 1
  in_startup = rng.randrange(_KILLS.value)
  left = missed = done_kills = 0
  for kill in range(_KILLS.value):
    if kill == in_startup:
      moment = startup * rng.uniform(0.2, 0.9)
      where = f"{moment:.1f} s into its start-up"
      progress, alive = _kill_at(args, 1.0, 0.0, moment)
    else:
      share = rng.uniform(0.0, 1.0 / (work_kills - done_kills))
      delay = rng.uniform(0.0, _PROGRESS_INTERVAL)
      done_kills += 1
      where = f"{100 * share:.0f}% of the work left + {delay:.2f} s"
      progress, alive = _kill_at(args, share, delay, None)
    left += alive
    missed += progress is None
    state = ("had finished" if progress is None else
             f"killed with {progress.done} of {progress.total} done (it started at "
             f"{progress.initial})" if progress.initial is not None else "killed before any work")
    print(f"{name}: kill {kill + 1} at {where}: {state}, {alive} processes left behind")
  return left, missed


def _shard_bytes(folder: str) -> dict[str, bytes]:
  return {os.path.basename(path): open(path, "rb").read()
          for path in sorted(glob.glob(os.path.join(folder, "examples-*.tfrecord")))}


def _checkpoints_state(model_dir: str) -> tuple[int, int, int]:
  """(checkpoints, ones that read in full, ones with a non-finite value)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido.utils import restoring  # pylint: disable=g-import-not-at-top
  prefixes = [p[:-len(".index")] for p in
              glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index"))]
  readable = [p for p in prefixes if restoring.damage(p) is None]
  non_finite = 0
  for prefix in readable:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
        non_finite += 1
        break
  return len(prefixes), len(readable), non_finite


def _last_step(model_dir: str) -> int:
  steps = [int(p.rsplit("-", 1)[1].split(".")[0]) for p in
           glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index"))]
  return max(steps, default=0)


def main(argv):
  del argv
  from kaleido.demo import generator  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  rng = random.Random(_SEED.value)
  work = _WORK_DIR.value or tempfile.mkdtemp(prefix="kaleido_crash_")
  catalog = os.path.join(work, "catalog.h5")
  generator.make_demo_catalog(catalog, _NUM_PRODUCTS.value, seed=0)
  vocab_file = os.path.join(work, "vocab.txt")
  vocab.write_vocab(vocab_file, vocab.learn_vocab(vocab.catalog_texts(catalog, "description"),
                                                  2000))
  reference, crashed = os.path.join(work, "reference"), os.path.join(work, "crashed")
  timing = _run_to_end(_prepare_args(catalog, vocab_file, reference))
  print(f"preparation: uninterrupted run {timing[0]:.1f} s, {timing[1]:.1f} s of it start-up")
  left, missed = _crash_phase("preparation", _prepare_args(catalog, vocab_file, crashed),
                              timing[1], rng)
  _run_to_end(_prepare_args(catalog, vocab_file, crashed))
  identical = _shard_bytes(reference) == _shard_bytes(crashed)
  print(f"preparation: {len(_shard_bytes(crashed))} shards, byte-identical to the reference: "
        f"{identical}; processes left behind: {left}")

  model_dir = os.path.join(work, "train")
  reference_dir = os.path.join(work, "train_reference")
  timing = _run_to_end(_train_args(reference, reference_dir))
  print(f"training: uninterrupted run {timing[0]:.1f} s, {timing[1]:.1f} s of it start-up")
  train_left, train_missed = _crash_phase("training", _train_args(reference, model_dir),
                                          timing[1], rng)
  _run_to_end(_train_args(reference, model_dir))
  total, readable, non_finite = _checkpoints_state(model_dir)
  reached = _last_step(model_dir) == _TRAIN_STEPS.value
  print(f"training: reached step {_last_step(model_dir)} of {_TRAIN_STEPS.value}: {reached}; "
        f"checkpoints {total}, reading in full {readable}, with a non-finite value {non_finite}; "
        f"processes left behind: {train_left}")
  print(f"kills that found the command finished: preparation {missed}, training {train_missed}")
  passed = (identical and not left and reached and readable == total and not non_finite and
            not train_left and not missed and not train_missed)
  print(f"crash test {'PASSED' if passed else 'FAILED'} (work folder {work})")
  sys.exit(0 if passed else 1)


if __name__ == "__main__":
  app.run(main)
