"""Damaged or missing JSON files the project wrote are one sentence naming the file and the fix:
truncated, zeroed, garbled (not UTF-8) and wrongly typed, for the checked reader and for the
manifest, the run config and the search index that go through it."""

import dataclasses
import os
import subprocess
import sys

import pytest

from kaleido import config as config_lib
from kaleido import errors
from kaleido.records import manifest as manifest_lib
from kaleido.search import index as index_lib
from kaleido.utils import files
from tests import catalogs

DAMAGE = {
    "truncated": lambda content: content[:len(content) // 2],
    "zeroed": lambda content: b"\0" * len(content),
    "garbled": lambda content: b"\xff\xfe" + content[2:],
    "a list": lambda content: b"[1, 2]",
}


def _damage(path: str, how: str) -> None:
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(DAMAGE[how](content))


@pytest.mark.parametrize("how", DAMAGE)
def test_read_json_names_the_damaged_file_and_the_fix(tmp_path, how):
  path = str(tmp_path / "state.json")
  files.write_json(path, {"step": 3, "note": "fine"})
  _damage(path, how)
  with pytest.raises(files.DamagedFileError, match=r"state\.json' is damaged .*; rerun X\.$"):
    files.read_json(path, "rerun X")
  assert files.read_json_or_none(path) is None
  with pytest.raises(files.DamagedFileError, match=r"missing\.json' is missing; rerun X\.$"):
    files.read_json(str(tmp_path / "missing.json"), "rerun X")


def _manifest_payload() -> dict:
  values = {"int": 1, "str": "x", "dict": {}, "list": []}
  return {field.name: values[str(field.type).split("[")[0]]
          for field in dataclasses.fields(manifest_lib.Manifest)}


@pytest.mark.parametrize("how", [*DAMAGE, "wrong field type"])
def test_a_damaged_manifest_is_one_sentence(tmp_path, how):
  path = str(tmp_path / manifest_lib.MANIFEST_NAME)
  files.write_json(path, _manifest_payload())
  if how == "wrong field type":
    files.write_json(path, {**_manifest_payload(), "num_examples": "12"})
  else:
    _damage(path, how)
  with pytest.raises(errors.KaleidoError, match="is damaged .*data/prepare.py"):
    manifest_lib.load(str(tmp_path))


def test_a_damaged_run_config_and_search_index_are_one_sentence(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / config_lib.RUN_CONFIG_NAME).write_text('{"format": "kaleido-')
  with pytest.raises(errors.KaleidoError, match="run_config.json' is damaged .*new --model_dir"):
    config_lib.load(str(run))
  index = tmp_path / "index"
  index.mkdir()
  (index / index_lib.INDEX_NAME).write_bytes(b"\0" * 40)
  with pytest.raises(errors.KaleidoError, match="is damaged .*tools/build_index.py"):
    index_lib.load_index(str(index))


def test_a_damaged_shard_is_one_sentence_for_evaluation_too(tmp_path):
  folder = catalogs.prepared_demo(str(tmp_path), 3, seed=1)
  manifest = manifest_lib.load(folder)
  assert len(manifest_lib.read_records(folder, manifest)) == manifest.num_examples
  path = manifest.shard_paths(folder)[0]
  size = os.path.getsize(path)
  with open(path, "r+b") as f:  # zeroed in place: the size the manifest lists still holds
    f.write(b"\0" * size)
  with pytest.raises(manifest_lib.ManifestError, match="is damaged .*re-prepare it"):
    manifest_lib.read_records(folder, manifest)
  os.truncate(path, size // 2)
  with pytest.raises(manifest_lib.ManifestError, match="truncated or changed .*re-prepare it"):
    manifest_lib.check_shards(folder, manifest)


def test_a_runs_missing_or_changed_vocabulary_is_named_with_its_fix(tmp_path):
  run = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(vocab_file=str(tmp_path / "vocab.txt"), vocab_hash="ab" * 32),
      training=config_lib.TrainingConfig(model_dir=str(tmp_path / "run")))
  with pytest.raises(config_lib.ConfigError, match=r"vocab\.txt' that the run .* is missing; "
                     r"put that file back \(its SHA-256 begins abababababab\)"):
    config_lib.vocab_file_of(run)
  (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
  run = dataclasses.replace(run, data=dataclasses.replace(
      run.data, vocab_hash=files.file_sha256(str(tmp_path / "vocab.txt"))))
  assert config_lib.vocab_file_of(run) == str(tmp_path / "vocab.txt")
  (tmp_path / "vocab.txt").write_text("[PAD]\n")  # cut short, or edited
  with pytest.raises(config_lib.ConfigError, match=r"has changed since the run .* put the "
                     "original back"):
    config_lib.vocab_file_of(run)


def test_a_killed_writers_temporary_files_are_cleared_and_a_live_ones_kept(tmp_path):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (tmp_path / "progress").mkdir()
  stale = [tmp_path / f"chunk-00003.npz.tmp-{dead.pid}",
           tmp_path / "progress" / f"shard-1.json.tmp-{dead.pid}"]
  live = tmp_path / f"chunk-00004.npz.tmp-{os.getpid()}"
  for path in (*stale, live):
    path.write_bytes(b"half")
  files.remove_stale_temporaries(str(tmp_path), str(tmp_path / "progress"))
  assert not any(path.exists() for path in stale) and live.exists()
