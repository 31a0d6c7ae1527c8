r"""Data-preparation speed and peak memory on the demo catalog (a benchmark, not a test).

  python bench/bench_prepare.py --num_products 500 --num_products 3000 --workers 2 \
      --runner pool --runner DirectRunner

For each catalog size and each --runner (pool: data/prepare.py's worker processes; a Beam
runner: the same work as a Beam pipeline, with --workers workers for DirectRunner): generate the
demo catalog (not timed), prepare it, and print images/s and the peak resident memory summed
over the main process and all its descendants (sampled every 0.1 s). Flat memory means the peak
does not grow with the catalog size. images/s is over the whole command's wall time (start-up
included), so the two paths compare directly; the pool's rate without start-up is printed too.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import psutil

_NUM_PRODUCTS = flags.DEFINE_multi_integer("num_products", [500, 3000], "Catalog sizes.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes.")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Patch side.")
_SEED = flags.DEFINE_integer("seed", 0, "Demo catalog seed.")
_RUNNERS = flags.DEFINE_multi_string("runner", ["pool", "DirectRunner"],
                                     "data/prepare.py --runner values to measure.")


def _tree_rss(process: psutil.Process) -> int:
  """Resident bytes of a process and all its descendants."""
  total = 0
  for member in [process] + process.children(recursive=True):
    try:
      total += member.memory_info().rss
    except psutil.Error:
      pass
  return total


def _run_prepare(catalog_path: str, output_dir: str, vocab_file: str,
                 runner: str) -> tuple[float, float | None, int]:
  """Prepares in a child process; returns wall seconds, the images/s of its progress line (which
  excludes interpreter and TensorFlow start-up; None for Beam, which has none) and the peak
  summed RSS of its process tree."""
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                        "prepare.py")
  start = time.monotonic()
  with tempfile.TemporaryFile("w+") as log:
    child = subprocess.Popen(
        [sys.executable, script, f"--input={catalog_path}", f"--output_dir={output_dir}",
         f"--vocab_file={vocab_file}", f"--workers={_WORKERS.value}",
         f"--patch_size={_PATCH_SIZE.value}", f"--runner={runner}"],
        stdout=subprocess.DEVNULL, stderr=log)
    process, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
      peak = max(peak, _tree_rss(process))
      time.sleep(0.1)
    log.seek(0)
    stderr = log.read()
  if child.returncode:
    raise RuntimeError(f"prepare failed:\n{stderr}")
  rates = re.findall(r"([0-9.]+) images/s ETA [0-9:?]+ done in", stderr)
  return time.monotonic() - start, float(rates[-1]) if rates else None, peak


def main(argv):
  del argv
  from kaleido.demo import generator  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  print(f"workers={_WORKERS.value} patch_size={_PATCH_SIZE.value} cpus={os.cpu_count()}")
  with tempfile.TemporaryDirectory() as tmp:
    for num_products in _NUM_PRODUCTS.value:
      catalog_path = os.path.join(tmp, f"demo{num_products}.h5")
      generator.make_demo_catalog(catalog_path, num_products, _SEED.value)
      vocab_file = os.path.join(tmp, "vocab.txt")
      if not os.path.exists(vocab_file):
        vocab.write_vocab(vocab_file, vocab.learn_vocab(vocab.catalog_texts(catalog_path, "description"), 4000))
      for runner in _RUNNERS.value:
        output_dir = os.path.join(tmp, f"out{num_products}_{runner}")
        seconds, rate, peak = _run_prepare(catalog_path, output_dir, vocab_file, runner)
        manifest = manifest_lib.load(output_dir)
        images = manifest.num_examples + manifest.num_skipped
        shard_bytes = sum(os.path.getsize(p) for p in manifest.shard_paths(output_dir))
        without_start = f" ({rate:.1f} excluding start-up)" if rate else ""
        print(f"runner={runner} products={num_products} images={images} "
              f"wall_seconds={seconds:.1f} images_per_s={images / seconds:.1f}{without_start} "
              f"peak_rss_all_processes_mb={peak / 2**20:.0f} "
              f"bytes_per_example={shard_bytes / images:.0f} "
              f"shards={[s['sha256'][:8] for s in manifest.shards]}")


if __name__ == "__main__":
  app.run(main)
