"""Preparation on Apache Beam's local runner writes the process pool's shards byte for byte and
counts bad rows by reason exactly as it does, on the demo catalog and on a JSON-lines catalog."""

import json
import os
import shutil

from apache_beam.io import localfilesystem
import numpy as np
import pytest

from kaleido.data import catalog as catalog_lib
from kaleido.data import catalogs as catalogs_lib
from kaleido.demo import generator as demo
from kaleido.patches import generator
from kaleido.records import manifest as manifest_lib
from kaleido.records import beam_prepare
from kaleido.records import prepare
from kaleido.records import prepare_config
from tests import catalogs

BASE = {"text": "Red cotton shirt.", "category": "TOPS", "subcategory": "SHIRTS"}


def _prepare(catalog_path, output_dir, vocab_file, runner="", **overrides):
  """The pool's preparation, or with `runner` the Beam pipeline's."""
  config = prepare_config.PrepareConfig(
      input_path=catalog_path, output_dir=output_dir, vocab_file=vocab_file,
      patch=generator.PatchConfig(patch_size=16), max_seq_length=16, workers=0, **overrides)
  return (beam_prepare.prepare_catalog(config, runner) if runner
          else prepare.prepare_catalog(config))


def _shards(manifest):
  return [(shard["file"], shard["num_examples"], shard["sha256"]) for shard in manifest.shards]


def test_beam_writes_the_pools_shards_and_manifest_on_the_demo_catalog(tmp_path):
  catalog = str(tmp_path / "demo.h5")
  demo.make_demo_catalog(catalog, 6, seed=2)
  vocab_file = catalogs.write_vocab(str(tmp_path))
  pool = _prepare(catalog, str(tmp_path / "pool"), vocab_file, num_shards=3, chunk_rows=2)
  beam = _prepare(catalog, str(tmp_path / "beam"), vocab_file, "DirectRunner", num_shards=3,
                  chunk_rows=2)
  assert len(pool.shards) == 3 and pool.num_examples > 6
  assert _shards(beam) == _shards(pool)
  pool_fields = {k: v for k, v in vars(pool).items() if k not in ("source", "vocab_file")}
  assert {k: v for k, v in vars(beam).items() if k not in ("source", "vocab_file")} == pool_fields
  # A rerun finds every shard written and only rewrites the manifest.
  os.remove(os.path.join(tmp_path / "beam", manifest_lib.MANIFEST_NAME))
  again = _prepare(catalog, str(tmp_path / "beam"), vocab_file, "DirectRunner", num_shards=3,
                   chunk_rows=2)
  assert _shards(again) == _shards(pool)


def test_beam_counts_bad_rows_of_a_jsonl_catalog_as_the_pool_does(tmp_path):
  rng = np.random.default_rng(5)
  for i in range(3):
    catalogs.write_png(str(tmp_path), f"img{i}.png", catalogs.product_image(rng, 96)[0])
  (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
  lines = [{**BASE, "image": f"img{i % 3}.png", "product_id": f"p{i}"} for i in range(7)]
  lines[1]["image"] = "broken.jpg"
  lines[3]["text"] = None
  lines[5]["product_id"] = None
  lines.append({**BASE, "image": "img0.png", "product_id": "p0", "category": "SHOES"})  # conflict
  path = tmp_path / "catalog.jsonl"
  path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
  vocab_file = catalogs.write_vocab(str(tmp_path))
  pool = _prepare(str(path), str(tmp_path / "pool"), vocab_file, num_shards=2, chunk_rows=3)
  beam = _prepare(str(path), str(tmp_path / "beam"), vocab_file, "DirectRunner", num_shards=2,
                  chunk_rows=3)
  assert pool.skipped_reasons == {"conflicting_labels": 1, "truncated_image": 1,
                                  "invalid_product_id": 1, "invalid_text": 1}
  assert beam.skipped_reasons == pool.skipped_reasons
  assert beam.num_examples == pool.num_examples == 4
  assert _shards(beam) == _shards(pool)


def test_a_failed_pipeline_rerun_finishes_without_counting_twice(tmp_path, monkeypatch):
  """The pipeline dies after writing one of two shards; the rerun writes the other only, and
  the manifest counts each row once."""
  catalog = str(tmp_path / "demo.h5")
  demo.make_demo_catalog(catalog, 4, seed=3)
  vocab_file = catalogs.write_vocab(str(tmp_path))
  pool = _prepare(catalog, str(tmp_path / "pool"), vocab_file, num_shards=2, chunk_rows=4)
  real_write_shard, written = prepare.write_shard, []

  def dies_after_one_shard(config, plan, shard, chunks):
    if written:
      raise OSError("worker lost")
    written.append(shard)
    return real_write_shard(config, plan, shard, chunks)

  monkeypatch.setattr(prepare, "write_shard", dies_after_one_shard)
  with pytest.raises(Exception, match="worker lost"):
    _prepare(catalog, str(tmp_path / "beam"), vocab_file, "DirectRunner", num_shards=2,
             chunk_rows=4)
  assert len(os.listdir(tmp_path / "beam" / prepare.PROGRESS_DIR)) == 1
  monkeypatch.setattr(prepare, "write_shard", real_write_shard)
  plan = prepare.plan_catalog(prepare_config.PrepareConfig(
      input_path=catalog, output_dir=str(tmp_path / "beam"), vocab_file=vocab_file,
      patch=generator.PatchConfig(patch_size=16), max_seq_length=16, num_shards=2))
  assert plan.pending == (1 - written[0],)
  beam = _prepare(catalog, str(tmp_path / "beam"), vocab_file, "DirectRunner", num_shards=2,
                  chunk_rows=4)
  assert _shards(beam) == _shards(pool) and beam.num_examples == pool.num_examples
  assert beam.skipped_reasons == pool.skipped_reasons


def test_beam_writes_the_alignment_pairs_the_loop_writes(tmp_path):
  from kaleido.alignment import beam_writer  # pylint: disable=g-import-not-at-top
  from kaleido.alignment import config as align_config  # pylint: disable=g-import-not-at-top
  from kaleido.alignment import writer  # pylint: disable=g-import-not-at-top
  from tests import test_alignment_records as aligned  # pylint: disable=g-import-not-at-top
  prepared = catalogs.prepared_demo(str(tmp_path / "demo"), 6, seed=5, num_shards=2)
  checkpoint = aligned._forced_checkpoint(str(tmp_path / "aag"), prepared,  # pylint: disable=protected-access
                                          aligned._chosen_word(prepared))  # pylint: disable=protected-access
  # Loose settings, so that even the untrained generator's spread attention gives pairs.
  config = align_config.AlignConfig(max_region_area=1.0, min_score=0.1)
  results = {}
  for path in ("loop", "beam"):
    folder = str(tmp_path / path)
    shutil.copytree(prepared, folder)
    results[path] = (beam_writer.add_alignments(folder, checkpoint, config, 4) if path == "beam"
                     else writer.add_alignments(folder, checkpoint, config, 4))
  loop, beam = results["loop"], results["beam"]
  assert loop.num_alignment_pairs > 0 and len(loop.shards) == 2
  assert _shards(beam) == _shards(loop)
  assert (beam.num_with_alignments, beam.num_without_alignments, beam.num_alignment_pairs) == (
      loop.num_with_alignments, loop.num_without_alignments, loop.num_alignment_pairs)


class _TestUrlFileSystem(localfilesystem.LocalFileSystem):
  """kaleidotest:///abs/path -> the local /abs/path, through Beam's FileSystems like gs://."""

  @classmethod
  def scheme(cls):
    return "kaleidotest"

  def open(self, path, *args, **kwargs):
    return super().open(path.removeprefix("kaleidotest://"), *args, **kwargs)

  def exists(self, path):
    return super().exists(path.removeprefix("kaleidotest://"))

  def match(self, patterns, limits=None):
    return super().match([p.removeprefix("kaleidotest://") for p in patterns], limits)


def test_a_catalog_and_its_images_on_a_beam_filesystem_give_the_local_shards(tmp_path):
  """The catalog file and its images as URLs (read through Beam's FileSystems, as gs:// and
  s3:// are) give the examples of the same catalog on the local disk, and a missing remote image
  is counted as a missing file."""
  rng = np.random.default_rng(7)
  for i in range(2):
    catalogs.write_png(str(tmp_path), f"img{i}.png", catalogs.product_image(rng, 96)[0])
  lines = [{**BASE, "image": f"img{i % 2}.png", "product_id": f"p{i}"} for i in range(3)]
  lines[2]["image"] = "gone.png"
  for folder, prefix in (("local", "../"), ("remote", f"kaleidotest://{tmp_path}/")):
    os.makedirs(tmp_path / folder)
    (tmp_path / folder / "catalog.jsonl").write_text("".join(
        json.dumps({**line, "image": prefix + line["image"]}) + "\n" for line in lines))
  vocab_file = catalogs.write_vocab(str(tmp_path))
  local = _prepare(str(tmp_path / "local" / "catalog.jsonl"), str(tmp_path / "out_local"),
                   vocab_file, num_shards=1)
  remote = _prepare(f"kaleidotest://{tmp_path}/remote/catalog.jsonl", str(tmp_path / "out_remote"),
                    vocab_file, "DirectRunner", num_shards=1)
  assert local.skipped_reasons == remote.skipped_reasons == {"missing_image_file": 1}
  assert remote.num_examples == local.num_examples > 0 and _shards(remote) == _shards(local)
  assert remote.source == f"kaleidotest://{tmp_path}/remote/catalog.jsonl"
  with pytest.raises(catalog_lib.CatalogError, match=r"pip install 'apache-beam\[gcp\]'"):
    catalogs_lib.open_catalog("gs://no-bucket/catalog.jsonl")


@pytest.mark.parametrize("runner, workers, options, local", [
    ("DirectRunner", 3, [], True), ("DirectRunner", 1, [], False),
    ("DirectRunner", 3, ["--direct_running_mode=multi_threading"], False),
    ("DataflowRunner", 3, [], False)])
def test_the_reaper_watches_only_local_worker_processes(runner, workers, options, local):
  pipeline_options = beam_prepare.pipeline_options(runner, options, workers)
  starts_local_workers = beam_prepare._starts_local_workers  # pylint: disable=protected-access
  assert starts_local_workers(pipeline_options) is local
