r"""Data-preparation speed and peak memory on the demo catalog (a benchmark, not a test).

  python bench/bench_prepare.py --num_products 500 1500 --workers 2

For each catalog size: generate the demo catalog (not timed), prepare it with --workers worker
processes, and print images/s and the peak resident memory of the main process and of the
largest worker. Flat memory means the peaks do not grow with the catalog size.
"""

import os
import re
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=wrong-import-position
from absl import flags

_NUM_PRODUCTS = flags.DEFINE_multi_integer("num_products", [500, 1500], "Catalog sizes.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes.")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Patch side.")
_SEED = flags.DEFINE_integer("seed", 0, "Demo catalog seed.")


def _run_prepare(catalog_path: str, output_dir: str, vocab_file: str) -> tuple[float, float]:
  """Prepares in a child process; returns (wall seconds, images/s reported by its progress line,
  which excludes interpreter and TensorFlow start-up)."""
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                        "prepare.py")
  start = time.monotonic()
  result = subprocess.run(
      [sys.executable, script, f"--input={catalog_path}", f"--output_dir={output_dir}",
       f"--vocab_file={vocab_file}", f"--workers={_WORKERS.value}",
       f"--patch_size={_PATCH_SIZE.value}"], check=True, stderr=subprocess.PIPE, text=True)
  rates = re.findall(r"([0-9.]+) images/s ETA [0-9:?]+ done in", result.stderr)
  return time.monotonic() - start, float(rates[-1])


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
      output_dir = os.path.join(tmp, f"out{num_products}")
      before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
      seconds, rate = _run_prepare(catalog_path, output_dir, vocab_file)
      peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
      manifest = manifest_lib.load(output_dir)
      images = manifest.num_examples + manifest.num_skipped
      shard_bytes = sum(os.path.getsize(p) for p in manifest.shard_paths(output_dir))
      print(f"products={num_products} images={images} wall_seconds={seconds:.1f} "
            f"images_per_s={rate:.1f} (excluding start-up) "
            f"peak_rss_largest_process_mb={peak_mb:.0f} "
            f"(before: {before / 1024:.0f}) bytes_per_example={shard_bytes / images:.0f}")


if __name__ == "__main__":
  app.run(main)
