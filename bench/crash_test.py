r"""Crash test: SIGKILL each long command at random moments, rerun it, check the result (a
benchmark others can rerun, not a timed test).

  python bench/crash_test.py [--seed 0] [--kills 8] [--phases preparation,training]

Phases, each an uninterrupted reference run, then a run killed --kills times and rerun after
every kill, then finished, compared with the reference:
- preparation (process pool) and preparation_beam (Apache Beam's DirectRunner, 2 worker
  processes): shards byte-identical to the pool's reference, manifests equal;
- alignments (data/add_alignments.py with a tiny captioner trained here): shards byte-identical,
  manifests equal;
- training (a tiny pre-training run) and finetuning (retrieval with an ITC head, from the
  reference pre-training): the last step reached, every checkpoint reads in full, no non-finite
  value;
- index (tools/build_index.py of the fine-tuned run): index.json equal, every chunk's arrays
  equal.
In every phase no process of a killed run may be left, and no temporary file after the finish.
The kills land anywhere in the work: one at a random moment of the start-up (before the first
progress line), the others inside the work each rerun has left, at a random share of it (read
from the command's own progress lines, on a pseudo-terminal so that they come every 0.5 s) drawn
so that work is left for the kills after it, plus a random part of 0.5 s. Beam's runner prints
no progress and writes every shard at its end, so its kills come at random moments of the first
70% of its reference run's duration. Prints one
line per kill (with the progress it cut) and a summary; every kill must cut work.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pty
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Iterator

from absl import app
from absl import flags
import numpy as np
import psutil

PHASES = ("preparation", "preparation_beam", "alignments", "training", "finetuning", "index")
_KILLS = flags.DEFINE_integer("kills", 8, "SIGKILLs per phase.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 1500, "Demo catalog products (the demo's "
                                     "training split has 600).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 200, "Training steps of each tiny model.")
_PHASES = flags.DEFINE_multi_enum("phases", list(PHASES), PHASES, "The phases to run (a later "
                                  "phase reads the reference output of the ones before it).")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to work (default: a temporary folder).")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BEAM_FLAGS = ["--runner=DirectRunner",
               "--beam_options=--direct_num_workers=2 --direct_running_mode=multi_processing"]
_TINY_MODEL = ["--patch_cnn=small", "--patch_cnn_weights=random", "--hidden_size=64",
               "--num_layers=2", "--num_heads=2", "--intermediate_size=256"]


def _command(script: str, *flags_: str) -> list[str]:
  return [sys.executable, os.path.join(REPO_ROOT, script), *flags_]


def _prepare_args(catalog: str, vocab: str, output_dir: str, beam: bool = False) -> list[str]:
  return _command("data/prepare.py", f"--input={catalog}", f"--output_dir={output_dir}",
                  f"--vocab_file={vocab}", "--workers=2", "--num_shards=8", "--patch_size=32",
                  *(_BEAM_FLAGS if beam else []))


def _train_args(data: str, model_dir: str, *more: str) -> list[str]:
  return _command("train.py", f"--train_data={data}", f"--model_dir={model_dir}", "--batch_size=32",
                  f"--train_steps={_TRAIN_STEPS.value}", "--checkpoint_every=5",
                  "--warmup_steps=0", "--learning_rate=1e-3", "--summary_every=5", *more)


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


@dataclasses.dataclass
class _Phase:
  """One long command: `args(folder)` runs it with its output in `folder`; `fresh(folder)` sets
  that folder up before the first run; `compare(reference, crashed)` lists what differs."""
  name: str
  args: Callable[[str], list[str]]
  compare: Callable[[str, str], list[str]]
  fresh: Callable[[str], None] = lambda folder: None
  has_progress: bool = True  # prints kaleido.utils.progress lines (Beam's runner does not)


def _crash_phase(phase: _Phase, folder: str, duration: float, startup: float,
                 rng: random.Random) -> tuple[int, int]:
  """Kills `phase`'s command --kills times: once at a random moment of its `startup` (seconds
  before the first progress line), the other times inside the work each rerun has left, at a
  random share of it drawn so that work is left for the kills after it, the start-up one included
  (with k kills to go, this one within the first 1 / k of what is left), plus a random part of the
  time between two progress lines;
  without progress lines, at random moments of the first 70% of its reference run's
  `duration`.
  Returns (processes left, kills that found it finished)."""
  in_startup = rng.randrange(_KILLS.value) if phase.has_progress else -1
  left = missed = 0
  for kill in range(_KILLS.value):
    if not phase.has_progress:
      # Beam writes every shard at the end of its pipeline (after grouping by shard): a kill in
      # that last stretch would leave the reruns after it nothing to cut.
      moment = duration * rng.uniform(0.1, 0.7)
      where = f"{moment:.1f} s of a {duration:.1f} s run"
      progress, alive = _kill_at(phase.args(folder), 1.0, 0.0, moment)
    elif kill == in_startup:
      moment = startup * rng.uniform(0.2, 0.9)
      where = f"{moment:.1f} s into its start-up"
      progress, alive = _kill_at(phase.args(folder), 1.0, 0.0, moment)
    else:
      share = rng.uniform(0.0, 1.0 / (_KILLS.value - kill))
      delay = rng.uniform(0.0, _PROGRESS_INTERVAL)
      where = f"{100 * share:.0f}% of the work left + {delay:.2f} s"
      progress, alive = _kill_at(phase.args(folder), share, delay, None)
    left += alive
    missed += progress is None
    state = ("had finished" if progress is None else
             f"killed with {progress.done} of {progress.total} done (it started at "
             f"{progress.initial})" if progress.initial is not None else
             "killed while running" if not phase.has_progress else "killed before any work")
    print(f"{phase.name}: kill {kill + 1} at {where}: {state}, {alive} processes left behind",
          flush=True)
  return left, missed


def _run_phase(phase: _Phase, work: str, crash: bool, rng: random.Random) -> bool:
  """Runs `phase` uninterrupted into WORK/<name>_reference and, with `crash`, killed and rerun
  into WORK/<name>, then compares the two; returns whether it passed."""
  reference = os.path.join(work, f"{phase.name}_reference")
  phase.fresh(reference)
  duration, startup = _run_to_end(phase.args(reference))
  if not crash:
    return True
  print(f"{phase.name}: uninterrupted run {duration:.1f} s, {startup:.1f} s of it start-up",
        flush=True)
  crashed = os.path.join(work, phase.name)
  phase.fresh(crashed)
  left, missed = _crash_phase(phase, crashed, duration, startup, rng)
  _run_to_end(phase.args(crashed))
  differences = phase.compare(reference, crashed)
  temporaries = _temporaries(crashed)
  print(f"{phase.name}: {'as the reference' if not differences else 'DIFFERS: ' + '; '.join(differences[:5])}; "
        f"temporary files left {len(temporaries)} {temporaries[:3]}; processes left behind {left}; "
        f"kills that found it finished {missed}", flush=True)
  return not (differences or temporaries or left or missed)


_TEMPORARY = re.compile(r"\.tmp-\d+$|_temp(_[0-9a-f]+)?$")  # files.atomic_path; TF's checkpoints


def _temporaries(folder: str) -> list[str]:
  return [os.path.relpath(os.path.join(root, name), folder)
          for root, dirs, names in os.walk(folder) for name in dirs + names
          if _TEMPORARY.search(name)]


def _shard_bytes(folder: str) -> dict[str, bytes]:
  return {os.path.basename(path): open(path, "rb").read()
          for path in sorted(glob.glob(os.path.join(folder, "examples-*.tfrecord")))}


def _same_prepared(reference: str, crashed: str) -> list[str]:
  """What differs between two prepared folders: shard bytes, manifests."""
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  expected, got = _shard_bytes(reference), _shard_bytes(crashed)
  differences = [f"shard {name} differs" for name in sorted(set(expected) | set(got))
                 if expected.get(name) != got.get(name)]
  if not expected:
    differences.append(f"{reference} has no shards")
  manifests = [files.read_json(os.path.join(folder, "manifest.json"))
               for folder in (reference, crashed)]
  return differences + [f"manifest field {key} differs" for key in sorted(manifests[0])
                        if manifests[0][key] != manifests[1].get(key)]


def _checkpoint_problems(reference: str, crashed: str) -> list[str]:
  """What is wrong with the interrupted run's checkpoints (runs differ in their float sums, so
  they are checked, not compared with the `reference`)."""
  del reference
  total, readable, non_finite = _checkpoints_state(crashed)
  problems = [f"{total - readable} of {total} checkpoints do not read in full"] * (readable < total)
  problems += [f"{non_finite} checkpoints hold a non-finite value"] * bool(non_finite)
  if _last_step(crashed) != _TRAIN_STEPS.value:
    problems.append(f"ended at step {_last_step(crashed)}, not {_TRAIN_STEPS.value}")
  return problems + ["no checkpoint"] * (not total)


def _same_index(reference: str, crashed: str) -> list[str]:
  """What differs between two search indexes: index.json, each chunk's arrays (embeddings within
  float32 rounding: a rerun that starts at the last, partial batch runs the model traced at that
  batch's shape, which moves a value by an ulp or two)."""
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  indexes = [files.read_json(os.path.join(folder, "index.json"))
             for folder in (reference, crashed)]
  differences = [f"index.json field {key} differs" for key in sorted(indexes[0])
                 if indexes[0][key] != indexes[1].get(key)]
  chunks = sorted(os.path.basename(p) for p in glob.glob(os.path.join(reference, "chunk-*.npz")))
  for name in chunks:
    expected, got = (np.load(os.path.join(folder, name)) for folder in (reference, crashed))
    for key in expected.files:
      same = (np.allclose(expected[key], got[key], rtol=0, atol=1e-6)
              if expected[key].dtype.kind == "f" and key in got.files else
              key in got.files and np.array_equal(expected[key], got[key]))
      if not same:
        differences.append(f"{name}:{key} differs")
  return differences + ["no chunks"] * (not chunks)


def _fresh_copy(source: str) -> Callable[[str], None]:
  def fresh(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)
  return fresh


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


def _phases(work: str, catalog: str, vocab_file: str, aag: str) -> list[_Phase]:
  """Every phase, each later one reading the reference output of those before it."""
  prepared = os.path.join(work, "preparation_reference")
  pretrained = os.path.join(work, "training_reference")
  finetuned = os.path.join(work, "finetuning_reference")
  return [
      _Phase("preparation", lambda out: _prepare_args(catalog, vocab_file, out), _same_prepared),
      _Phase("preparation_beam", lambda out: _prepare_args(catalog, vocab_file, out, beam=True),
             lambda reference, crashed: (_same_prepared(prepared, crashed) +
                                         _same_prepared(prepared, reference)),
             has_progress=False),
      _Phase("alignments", lambda out: _command(
          "data/add_alignments.py", f"--data={out}", f"--aag_checkpoint={aag}",
          "--batch_size=16"), _same_prepared, fresh=_fresh_copy(prepared)),
      _Phase("training", lambda out: _train_args(prepared, out, *_TINY_MODEL),
             _checkpoint_problems),
      _Phase("finetuning", lambda out: _train_args(
          prepared, out, "--task=retrieval", f"--init_checkpoint={pretrained}",
          "--itc_weight=1"), _checkpoint_problems),
      _Phase("index", lambda out: _command(
          "tools/build_index.py", f"--checkpoint={finetuned}", f"--data={prepared}",
          f"--output={out}", "--chunk_size=128", "--batch_size=32"), _same_index)]


def _tiny_captioner(prepared: str, output_dir: str) -> None:
  """A captioner trained a few steps (the alignments phase's generator; its pairs need not be
  good, only the same in every run)."""
  _run_to_end(_command("data/train_aag.py", f"--input={prepared}", f"--output_dir={output_dir}",
                       "--steps=20", "--image_size=64", "--feature_size=32",
                       "--embedding_size=16", "--hidden_size=32", "--attention_size=16",
                       "--checkpoint_every=20", "--log_every=10", "--picture_every=1000"))


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
  aag = os.path.join(work, "captioner")
  phases = _phases(work, catalog, vocab_file, aag)
  last = max(PHASES.index(name) for name in _PHASES.value)
  results = {}
  for phase in phases[:last + 1]:
    if phase.name == "alignments":
      _tiny_captioner(os.path.join(work, "preparation_reference"), aag)
    crash = phase.name in _PHASES.value
    passed = _run_phase(phase, work, crash, rng)
    if crash:
      results[phase.name] = passed
  print("phases: " + ", ".join(f"{name} {'passed' if ok else 'FAILED'}"
                               for name, ok in results.items()))
  passed = all(results.values())
  print(f"crash test {'PASSED' if passed else 'FAILED'} (work folder {work})")
  sys.exit(0 if passed else 1)


if __name__ == "__main__":
  app.run(main)
