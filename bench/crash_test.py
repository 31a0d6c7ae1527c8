r"""Crash test: SIGKILL data preparation and training at random moments, resume, check the result
(a benchmark others can rerun, not a timed test).

  python bench/crash_test.py --kills 5 [--seed 0] [--num_products 600] [--train_steps 60]

Preparation: an uninterrupted reference run, then a run killed --kills times at seeded random
moments within the work each rerun has left (after the reference's start-up, up to its first
progress line, and before the rest of its time runs out) and rerun each time, then finished;
its shards must be byte-identical to the reference's and no process of a killed run may be
left. Training: a tiny model on the prepared data, killed the same way and rerun; it must reach
--train_steps, every checkpoint left must read in full with finite values, and no process may
be left. Prints one line per kill and a summary.
"""

from __future__ import annotations

import glob
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import psutil

_KILLS = flags.DEFINE_integer("kills", 5, "SIGKILLs per phase.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 600, "Demo catalog products (the demo's "
                                     "training split has 600).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 60, "Training steps of the tiny model.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to work (default: a temporary folder).")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepare_args(catalog: str, vocab: str, output_dir: str) -> list[str]:
  return [sys.executable, os.path.join(REPO_ROOT, "data", "prepare.py"), f"--input={catalog}",
          f"--output_dir={output_dir}", f"--vocab_file={vocab}", "--workers=2",
          "--num_shards=8", "--patch_size=32"]


def _train_args(data: str, model_dir: str) -> list[str]:
  return [sys.executable, os.path.join(REPO_ROOT, "train.py"), f"--train_data={data}",
          f"--model_dir={model_dir}", "--backbone=small", "--resnet_weights=random",
          "--hidden_size=32", "--num_layers=2", "--num_heads=2", "--intermediate_size=64",
          "--batch_size=8", f"--train_steps={_TRAIN_STEPS.value}", "--checkpoint_every=5",
          "--warmup_steps=0", "--learning_rate=1e-3", "--summary_every=5"]


PROGRESS_LINE = re.compile(r" \d+/\d+ \(")  # kaleido.utils.progress: "name 17/1000 (1.7%) ..."


def _run_to_end(args: list[str]) -> tuple[float, float]:
  """Runs `args` to the end; returns (seconds in all, seconds until its first progress line,
  i.e. its start-up)."""
  start = time.monotonic()
  process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  startup, tail = None, []
  for line in process.stderr:
    if startup is None and PROGRESS_LINE.search(line):
      startup = time.monotonic() - start
    tail = (tail + [line])[-40:]
  if process.wait():
    raise SystemExit(f"{' '.join(args[:2])} failed:\n{''.join(tail)}")
  duration = time.monotonic() - start
  return duration, duration * 0.4 if startup is None else startup


def _kill_after(args: list[str], seconds: float) -> tuple[bool, int]:
  """Starts `args`, SIGKILLs it after `seconds` (if still running); returns whether it was
  killed and how many of its processes outlived it by 15 s."""
  process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  parent = psutil.Process(process.pid)
  deadline = time.monotonic() + seconds
  family: dict[int, psutil.Process] = {}
  while time.monotonic() < deadline and process.poll() is None:
    try:
      family.update({child.pid: child for child in parent.children(recursive=True)})
    except psutil.Error:
      pass
    time.sleep(0.05)
  if process.poll() is not None:
    return False, 0
  process.send_signal(signal.SIGKILL)
  process.wait()
  _, alive = psutil.wait_procs(list(family.values()), timeout=15)
  for leftover in alive:
    leftover.kill()
  return True, len(alive)


def _crash_phase(name: str, args: list[str], timing: tuple[float, float], rng: random.Random,
                 done) -> int:
  """Kills `args` --kills times, each at a seeded random moment within the work it has left:
  after the start-up and before the time the rest of an uninterrupted run would take (`timing`
  from _run_to_end; `done()` -> (units done, units in all)). Returns the processes left."""
  duration, startup = timing
  left = 0
  for kill in range(_KILLS.value):
    finished, total = done()
    moment = startup + rng.uniform(0.0, 1.0) * (duration - startup) * (1 - finished / total)
    killed, alive = _kill_after(args, moment)
    left += alive
    finished, total = done()
    print(f"{name}: kill {kill + 1} at {moment:5.1f} s: "
          f"{'killed' if killed else 'had finished'} with {finished} of {total} done, {alive} "
          "processes left behind")
  return left


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
  left = _crash_phase("preparation", _prepare_args(catalog, vocab_file, crashed), timing, rng,
                      lambda: (len(_shard_bytes(crashed)), 8))  # shards written
  _run_to_end(_prepare_args(catalog, vocab_file, crashed))
  identical = _shard_bytes(reference) == _shard_bytes(crashed)
  print(f"preparation: {len(_shard_bytes(crashed))} shards, byte-identical to the reference: "
        f"{identical}; processes left behind: {left}")

  model_dir = os.path.join(work, "train")
  reference_dir = os.path.join(work, "train_reference")
  timing = _run_to_end(_train_args(reference, reference_dir))
  print(f"training: uninterrupted run {timing[0]:.1f} s, {timing[1]:.1f} s of it start-up")
  train_left = _crash_phase("training", _train_args(reference, model_dir), timing, rng,
                            lambda: (_last_step(model_dir), _TRAIN_STEPS.value))  # newest checkpoint
  _run_to_end(_train_args(reference, model_dir))
  total, readable, non_finite = _checkpoints_state(model_dir)
  reached = _last_step(model_dir) == _TRAIN_STEPS.value
  print(f"training: reached step {_last_step(model_dir)} of {_TRAIN_STEPS.value}: {reached}; "
        f"checkpoints {total}, reading in full {readable}, with a non-finite value {non_finite}; "
        f"processes left behind: {train_left}")
  passed = (identical and not left and reached and readable == total and not non_finite and
            not train_left)
  print(f"crash test {'PASSED' if passed else 'FAILED'} (work folder {work})")
  sys.exit(0 if passed else 1)


if __name__ == "__main__":
  app.run(main)
