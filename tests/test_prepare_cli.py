"""data/prepare.py as a user runs it: worker processes, one-sentence errors, idempotent reruns."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from kaleido.data import fashiongen
from kaleido.data import splits
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREPARE = os.path.join(REPO_ROOT, "data", "prepare.py")


def _run(*args):
  return subprocess.run([sys.executable, PREPARE, *args], capture_output=True, text=True,
                        timeout=300, check=False)


def test_prepare_with_workers_and_rerun(tmp_path):
  catalog_path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(catalog_path, catalogs.fashiongen_products(10))  # 19 images
  vocab_file = catalogs.write_vocab(str(tmp_path))
  out = str(tmp_path / "out")
  args = [f"--input={catalog_path}", f"--output_dir={out}", f"--vocab_file={vocab_file}",
          "--workers=2", "--num_shards=2", "--patch_size=16"]
  result = _run(*args)
  assert result.returncode == 0, result.stderr
  assert "Wrote 19 examples of 10 products in 2 shards" in result.stdout
  assert "images/s ETA" in result.stderr  # progress with rate and ETA
  manifest = manifest_lib.load(out)
  assert manifest.num_examples == 19 and manifest.vocab_hash
  # A rerun with the same settings finds every shard done and rewrites nothing.
  mtimes = [os.path.getmtime(p) for p in manifest.shard_paths(out)]
  again = _run(*args)
  assert again.returncode == 0, again.stderr
  assert [os.path.getmtime(p) for p in manifest.shard_paths(out)] == mtimes


def _error_lines(result):
  """Our error lines; TensorFlow's own start-up log lines are not ours to judge."""
  assert "Traceback" not in result.stderr
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_bad_input_gives_one_sentence(tmp_path):
  result = _run(f"--input={tmp_path / 'absent.h5'}", f"--output_dir={tmp_path / 'out'}")
  assert result.returncode == 1
  assert _error_lines(result) == [
      f"error: Catalog file {str(tmp_path / 'absent.h5')!r} does not exist; pass an existing .h5 "
      "or .jsonl file (python data/make_demo.py writes a demo one)."]
  catalog_path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(catalog_path, catalogs.fashiongen_products(2))
  result = _run(f"--input={catalog_path}", f"--output_dir={tmp_path / 'out'}",
                f"--vocab_file={tmp_path / 'no_vocab.txt'}")
  assert result.returncode == 1
  errors = _error_lines(result)
  assert len(errors) == 1 and "no_vocab.txt" in errors[0]
  assert not os.path.exists(tmp_path / "out")  # inputs are checked before anything is made
  (tmp_path / "a_file").write_text("x")
  result = _run(f"--input={catalog_path}", f"--output_dir={tmp_path / 'a_file'}")
  assert result.returncode == 1
  assert _error_lines(result) == [f"error: --output_dir={str(tmp_path / 'a_file')!r} is a file; "
                                  "pass a folder (it is created if missing)."]


def test_holdout_fraction_splits_by_product(tmp_path):
  catalog_path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(catalog_path, catalogs.fashiongen_products(12))
  vocab_file = catalogs.write_vocab(str(tmp_path))
  out, dev = str(tmp_path / "train"), str(tmp_path / "development")
  args = [f"--input={catalog_path}", f"--output_dir={out}", f"--vocab_file={vocab_file}",
          "--workers=0", "--patch_size=16", "--holdout_fraction=0.3", f"--holdout_dir={dev}",
          "--holdout_seed=4"]
  result = _run(*args)
  assert result.returncode == 0, result.stderr
  train, development = manifest_lib.load(out), manifest_lib.load(dev)
  # Every image lands on one side, no product on both, and the split is the seed's.
  assert train.num_examples + development.num_examples == 24  # 12 products of 1, 2, 3 views
  assert train.num_other_split == development.num_examples
  assert development.num_other_split == train.num_examples
  held = {e["product_id"].decode() for e in reader.make_dataset(dev).as_numpy_iterator()}
  kept = {e["product_id"].decode() for e in reader.make_dataset(out).as_numpy_iterator()}
  assert held and kept and not held & kept
  assert held == {str(1000 + i) for i in range(12) if splits.in_holdout(str(1000 + i), 0.3, 4)}
  assert development.categories == train.categories and development.vocab_hash == train.vocab_hash
  assert "rows of the other side of the split" in result.stdout


@pytest.mark.parametrize("runner", ["pool", "beam"])
def test_workers_exit_when_prepare_is_killed(tmp_path, runner):
  """SIGKILL as soon as 2 workers run (Beam's before they are handed any work): none survives."""
  catalog_path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(catalog_path, catalogs.fashiongen_products(80))
  beam = ["--runner=DirectRunner", "--beam_options=--direct_num_workers=2 "
          "--direct_running_mode=multi_processing"] if runner == "beam" else []
  process = subprocess.Popen(
      [sys.executable, PREPARE, f"--input={catalog_path}", f"--output_dir={tmp_path / 'out'}",
       f"--vocab_file={catalogs.write_vocab(str(tmp_path))}", "--workers=2", "--patch_size=16",
       *beam], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  parent = psutil.Process(process.pid)
  deadline = time.monotonic() + 120
  children = []
  while len([c for c in children if _is_worker(c, runner)]) < 2:
    assert time.monotonic() < deadline and process.poll() is None, "no workers started"
    time.sleep(0.2)
    children = parent.children(recursive=True)
  time.sleep(0.5)  # the Beam path's watchdog notes descendants every 0.2 s (its documented limit)
  process.send_signal(signal.SIGKILL)
  process.wait()
  _, alive = psutil.wait_procs(children, timeout=15)
  assert not alive, [" ".join(c.cmdline())[:120] for c in alive]


def _is_worker(child: psutil.Process, runner: str = "pool") -> bool:
  """Whether a child of prepare is a live worker: not multiprocessing's tracker, nor the Beam
  path's watchdog, not exited."""
  try:
    command = " ".join(child.cmdline())
  except (psutil.ZombieProcess, psutil.NoSuchProcess):
    return False
  if runner == "beam":
    return command.startswith(sys.executable) and "sdk_worker_main" in command
  return "resource_tracker" not in command


def _ctrl_c_default():
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_of_the_process_group_is_one_line_and_the_rerun_finishes(tmp_path):
  """Ctrl-C reaches prepare.py and its workers (the terminal signals the whole group): the workers
  leave it to prepare.py, which stops in one line with status 130; the rerun completes."""
  catalog_path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(catalog_path, catalogs.fashiongen_products(500))
  out = tmp_path / "out"
  args = [f"--input={catalog_path}", f"--output_dir={out}",
          f"--vocab_file={catalogs.write_vocab(str(tmp_path))}", "--workers=2", "--patch_size=32",
          "--num_shards=8"]
  # As a command typed at a terminal: Ctrl-C not ignored (a background job, as the suite may
  # be, starts its children with SIGINT ignored, which prepare.py rightly keeps).
  process = subprocess.Popen([sys.executable, PREPARE, *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=_ctrl_c_default)
  deadline = time.monotonic() + 120
  while not list(out.glob("examples-*")):  # the workers have cut images
    assert time.monotonic() < deadline and process.poll() is None, "no shard was started"
    time.sleep(0.05)
  os.killpg(process.pid, signal.SIGINT)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 130 and "Interrupted by Ctrl-C" in stderr, stderr[-2000:]
  assert "Traceback" not in stderr, stderr[-2000:]
  rerun = _run(*args)
  assert rerun.returncode == 0, rerun.stderr
  assert manifest_lib.load(str(out)).num_examples == len(list(reader.make_dataset(str(out))))


def test_a_worker_made_from_another_thread_exits_with_its_parent():
  """Beam runs a DoFn's setup (interrupts.become_worker) outside the worker's main thread."""
  child = ("import threading, time\n"
           "from kaleido.utils import interrupts\n"
           "thread = threading.Thread(target=interrupts.become_worker)\n"
           "thread.start(); thread.join()\n"
           "print('ready', flush=True); time.sleep(60)\n")
  parent = subprocess.Popen([sys.executable, "-c", (
      "import subprocess, sys\n"
      f"worker = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=sys.stdout)\n"
      "print(worker.pid, flush=True); worker.wait()\n")], stdout=subprocess.PIPE, text=True)
  worker = psutil.Process(int(parent.stdout.readline()))
  assert parent.stdout.readline().strip() == "ready"  # no error in the thread
  parent.kill()
  parent.wait()
  _, alive = psutil.wait_procs([worker], timeout=10)
  assert not alive
