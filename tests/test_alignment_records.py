"""Pairs into TFRecords and back: data/add_alignments.py, data/prepare.py --aag_checkpoint, the
reader, AGM and bad checkpoints; and a short training run of the captioner with resume."""

import collections
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config as kaleido_config
from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import captioner_dir
from kaleido.alignment import config as align_config
from kaleido.alignment import inputs
from kaleido.alignment import pairs
from kaleido.alignment import writer
from kaleido.masking import agm
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.tasks import alignment_captioner
from kaleido.text import vocab as vocab_lib
from kaleido.training import trainer as trainer_lib
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALIGN_KEYS = ("align_token", "align_patch", "align_score")
STUB_PATCHES = (7, 20, 41)  # one L3, L4 and L5 patch
SIZES = dict(image_size=64, feature_size=16, embedding_size=8, hidden_size=16,
             attention_size=8, dropout=0.0)


@pytest.fixture(scope="module", name="prepared")
def _prepared(tmp_path_factory) -> str:
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("aag")), 8, seed=5, num_shards=2)


def _records(folder: str) -> list[tf.train.Example]:
  paths = manifest_lib.load(folder).shard_paths(folder)
  return [tf.train.Example.FromString(r)
          for r in tf.data.TFRecordDataset(paths).as_numpy_iterator()]


def _tokens(example: tf.train.Example, vocab: list[str]) -> list[str]:
  return [vocab[i] for i in example.features.feature["token_ids"].int64_list.value]


def _chosen_word(folder: str) -> str:
  """A one-token content word in some texts but not all."""
  vocab = vocab_lib.read_vocab(manifest_lib.load(folder).vocab_file)
  counts = collections.Counter()
  records = _records(folder)
  for example in records:
    counts.update(set(_tokens(example, vocab)))
  candidates = [w for w, n in counts.items()
                if 0.2 * len(records) <= n <= 0.8 * len(records) and w.isalpha() and len(w) > 3]
  return sorted(candidates)[0]


class _StubAligner:
  """Aligns every occurrence of one word with STUB_PATCHES, whatever the image."""

  def __init__(self, folder: str, word: str):
    manifest = manifest_lib.load(folder)
    self.captioner_config = captioner_dir.captioner_config_for(manifest, folder, **SIZES)
    self._word_id = vocab_lib.read_vocab(manifest.vocab_file).index(word)

  def align(self, images, token_ids):
    results = []
    for ids in token_ids:
      positions = [i for i, t in enumerate(ids) if t == self._word_id]
      tokens = np.repeat(positions, len(STUB_PATCHES)).astype(np.int64)
      patches = np.tile(STUB_PATCHES, len(positions)).astype(np.int64)
      scores = np.tile([0.9, 0.8, 0.7], len(positions)).astype(np.float32)
      results.append(types.SimpleNamespace(
          alignment=pairs.ExampleAlignment([], tokens, patches, scores)))
    assert len(images) == len(results)
    return results


def _forced_checkpoint(directory: str, folder: str, word: str, **overrides) -> str:
  """An untrained captioner whose output bias makes it say `word` at every step."""
  manifest = manifest_lib.load(folder)
  config = captioner_dir.captioner_config_for(manifest, folder, **SIZES)
  config = dataclasses.replace(config, **overrides)
  tf_keras.utils.set_random_seed(0)
  model = captioner_lib.Captioner(config)
  bias = np.zeros(config.vocab_size, np.float32)
  bias[vocab_lib.read_vocab(manifest.vocab_file).index(word)] = 50.0
  model.output_layer.bias.assign(bias)
  kaleido_config.save(_experiment(folder, directory, config))
  captioner_dir.copy_vocab(directory, manifest.vocab_file)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                             os.path.join(directory, captioner_dir.CHECKPOINT_DIR), 1).save(1)
  return directory


def _experiment(folder: str, model_dir: str, captioner: kaleido_config.CaptionerConfig,
                steps: int = 2) -> kaleido_config.ExperimentConfig:
  manifest = manifest_lib.load(folder)
  return kaleido_config.ExperimentConfig(
      task=kaleido_config.TaskConfig(name=kaleido_config.CAPTIONER),
      data=kaleido_config.DataConfig(train_data=folder, vocab_file=manifest.vocab_file,
                                     vocab_hash=manifest.vocab_hash),
      model=captioner,
      optimizer=kaleido_config.OptimizerConfig(name="adam", learning_rate=1e-3,
                                               schedule="constant", warmup_steps=0,
                                               clip_norm=5.0),
      training=kaleido_config.TrainingConfig(model_dir=model_dir, train_steps=steps,
                                             batch_size=4, checkpoint_every=1, summary_every=1,
                                             image_summary_every=2))


@pytest.fixture(scope="module", name="aligned")
def _aligned(prepared, tmp_path_factory) -> tuple[str, str, list[tf.train.Example]]:
  """A copy of the prepared folder with the stub's pairs; its word and the records before."""
  folder = str(tmp_path_factory.mktemp("aligned") / "data")
  shutil.copytree(prepared, folder)
  word = _chosen_word(folder)
  before = _records(folder)
  writer.write_alignments(folder, _StubAligner(folder, word), "stub-1", "stub", batch_size=5)
  return folder, word, before


def test_pairs_round_trip_through_the_reader(aligned):
  folder, word, before = aligned
  manifest = manifest_lib.load(folder)
  vocab = vocab_lib.read_vocab(manifest.vocab_file)
  with_word = sum(word in _tokens(example, vocab) for example in before)
  assert 0 < with_word < manifest.num_examples
  assert manifest.num_with_alignments == with_word
  assert manifest.num_without_alignments == manifest.num_examples - with_word
  assert manifest.aag_checkpoint == "stub"
  pairs_read = 0
  for example in reader.make_dataset(folder, max_alignments=64).as_numpy_iterator():
    count = int(example["num_alignments"])
    words = [vocab[i] for i in example["input_word_ids"]]
    positions = [i for i, w in enumerate(words) if w == word]
    assert count == 3 * len(positions)
    tokens, patches = example["align_token"][:count], example["align_patch"][:count]
    assert sorted(zip(tokens.tolist(), patches.tolist())) == sorted(
        (p, q) for p in positions for q in STUB_PATCHES)
    # The reader puts the strongest first: the L3 patch (0.9) of every position leads.
    assert example["align_patch"][:len(positions)].tolist() == [7] * len(positions)
    np.testing.assert_allclose(sorted(example["align_score"][:count]),
                               sorted([0.9, 0.8, 0.7] * len(positions)), rtol=1e-6)
    assert (example["align_token"][count:] == -1).all()
    pairs_read += count
  assert pairs_read == manifest.num_alignment_pairs > 0


def test_every_other_field_is_kept(aligned):
  folder, _, before = aligned
  after = _records(folder)
  assert len(after) == len(before)
  for old, new in zip(before, after):
    old_features, new_features = old.features.feature, new.features.feature
    assert set(old_features) == set(new_features)
    for key in old_features:
      if key not in ALIGN_KEYS:
        assert new_features[key].SerializeToString() == old_features[key].SerializeToString()


def test_rerun_skips_shards_done_with_the_same_generator(aligned):
  folder, word, _ = aligned
  manifest = manifest_lib.load(folder)
  paths = manifest.shard_paths(folder)
  mtimes = [os.path.getmtime(p) for p in paths]
  stub = _StubAligner(folder, word)
  again = writer.write_alignments(folder, stub, "stub-1", "stub")
  assert [os.path.getmtime(p) for p in paths] == mtimes
  assert again.num_alignment_pairs == manifest.num_alignment_pairs
  writer.write_alignments(folder, stub, "stub-2", "stub")  # another generator: redone
  assert [os.path.getmtime(p) for p in paths] != mtimes
  assert manifest_lib.load(folder).num_alignment_pairs == manifest.num_alignment_pairs


def test_ctrl_c_finishes_the_shard_in_hand_and_the_rerun_does_the_rest(prepared, tmp_path):
  folder = str(tmp_path / "data")
  shutil.copytree(prepared, folder)
  stub = _StubAligner(folder, _chosen_word(folder))
  align = stub.align

  def ctrl_c_once(images, token_ids):
    if not sent:
      sent.append(True)
      os.kill(os.getpid(), signal.SIGINT)
    return align(images, token_ids)

  sent = []
  stub.align = ctrl_c_once
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
  try:
    with pytest.raises(KeyboardInterrupt):
      writer.write_alignments(folder, stub, "stub-1", "stub", batch_size=2)
  finally:
    signal.signal(signal.SIGINT, previous)
  paths = manifest_lib.load(folder).shard_paths(folder)
  assert writer.pending_shards(folder, "stub-1") == paths[1:]  # the first finished, whole
  manifest = writer.write_alignments(folder, stub, "stub-1", "stub")
  assert manifest.num_with_alignments > 0 and not writer.pending_shards(folder, "stub-1")


def test_a_captioner_with_nothing_usable_gives_no_pairs_and_is_counted(prepared, tmp_path):
  folder = str(tmp_path / "data")
  shutil.copytree(prepared, folder)
  word = _chosen_word(folder)
  ckpt = _forced_checkpoint(str(tmp_path / "ckpt"), folder, word)
  # It says the word but never looks anywhere in particular: untrained, near-uniform attention.
  manifest = writer.add_alignments(folder, ckpt, align_config.AlignConfig(), batch_size=5)
  assert manifest.num_with_alignments == 0 and manifest.num_alignment_pairs == 0
  assert manifest.num_without_alignments == manifest.num_examples
  assert manifest.aag_checkpoint == os.path.abspath(ckpt)
  assert all(int(e["num_alignments"]) == 0 for e in reader.make_dataset(folder).as_numpy_iterator())


def _masked_aligned_items(example: dict, masking: str, draws: int = 100) -> int:
  """Draws in which AGM / random masking masks at least one aligned token or patch."""
  config = kaleido_config.PretrainingConfig(masking=masking)
  maskable = tf.constant((example["input_mask"] == 1) & (example["input_word_ids"] > 4))
  align_token, align_patch = (tf.constant(example[key]) for key in ("align_token", "align_patch"))

  def choose(seed):
    choice = agm.choose_masks(maskable, align_token, align_patch, config,
                              tf.stack([seed, tf.constant(7, tf.int64)]))
    return (choice.token_positions, choice.num_tokens,
            tf.concat([choice.cp_positions, choice.grey_positions, choice.blank_positions], 0))

  batch = next(tf.data.Dataset.range(draws).map(choose).batch(draws).as_numpy_iterator())
  count = int(example["num_alignments"])
  tokens, patches = set(example["align_token"][:count]), set(example["align_patch"][:count])
  return sum(bool(set(positions[:n]) & tokens or set(masked) & patches)
             for positions, n, masked in zip(*batch))


def test_agm_prefers_the_written_pairs(aligned):
  folder, _, _ = aligned
  example = next(e for e in reader.make_dataset(folder).as_numpy_iterator()
                 if e["num_alignments"] > 0)
  assert _masked_aligned_items(example, "agm") == 100  # the first pair is always used
  assert _masked_aligned_items(example, "random") < 90


def test_mismatched_checkpoints_are_refused(prepared, tmp_path):
  word = _chosen_word(prepared)
  other_vocab = _forced_checkpoint(str(tmp_path / "vocab"), prepared, word,
                                   vocab_hash="f" * 64)
  with pytest.raises(align_config.AlignmentError, match="another vocabulary"):
    writer.add_alignments(prepared, other_vocab, align_config.AlignConfig())
  too_large = _forced_checkpoint(str(tmp_path / "size"), prepared, word, image_size=96)
  with pytest.raises(align_config.AlignmentError, match="at most 80 pixels"):
    writer.add_alignments(prepared, too_large, align_config.AlignConfig())
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "data", "add_alignments.py"),
       f"--data={prepared}", f"--aag_checkpoint={other_vocab}"],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "another vocabulary" in errors[0] and "train_aag.py" in errors[0]
  assert manifest_lib.load(prepared).num_with_alignments == 0  # nothing was written


def _prepare_cli(prepared: str, output_dir: str, *extra: str) -> subprocess.CompletedProcess:
  """data/prepare.py on the catalog of `prepared`, with its settings and `extra` flags."""
  manifest = manifest_lib.load(prepared)
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "data", "prepare.py"), f"--input={manifest.source}",
       f"--output_dir={output_dir}", f"--vocab_file={manifest.vocab_file}",
       f"--patch_size={manifest.patch_size}", f"--max_seq_length={manifest.max_seq_length}",
       f"--num_shards={len(manifest.shards)}", "--workers=0", *extra],
      capture_output=True, text=True, timeout=300, check=False)


def test_prepare_with_a_generator_writes_what_add_alignments_would(prepared, tmp_path):
  word = _chosen_word(prepared)
  ckpt = _forced_checkpoint(str(tmp_path / "ckpt"), prepared, word)
  # Loose settings, so that even the untrained generator's spread attention gives pairs.
  loose = align_config.AlignConfig(max_region_area=1.0, min_score=0.1)
  expected_folder = str(tmp_path / "expected")
  shutil.copytree(prepared, expected_folder)
  expected = writer.add_alignments(expected_folder, ckpt, loose, batch_size=5)
  output_dir = str(tmp_path / "prepared")
  result = _prepare_cli(prepared, output_dir, f"--aag_checkpoint={ckpt}",
                        "--max_region_area=1.0", "--min_score=0.1", "--align_batch_size=3")
  assert result.returncode == 0, result.stderr
  got = manifest_lib.load(output_dir)
  assert expected.num_alignment_pairs > 0
  assert (got.num_with_alignments, got.num_alignment_pairs, got.aag_checkpoint) == (
      expected.num_with_alignments, expected.num_alignment_pairs, expected.aag_checkpoint)
  assert _records(output_dir) == _records(expected_folder)  # field by field


def test_prepare_refuses_a_mismatched_generator_before_cutting_images(prepared, tmp_path):
  ckpt = _forced_checkpoint(str(tmp_path / "ckpt"), prepared, _chosen_word(prepared),
                            vocab_hash="f" * 64)
  output_dir = str(tmp_path / "prepared")
  result = _prepare_cli(prepared, output_dir, f"--aag_checkpoint={ckpt}")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "another vocabulary" in errors[0]
  assert not [name for name in os.listdir(output_dir) if name.startswith("examples-")]


def _train(config: kaleido_config.ExperimentConfig) -> trainer_lib.TrainResult:
  captioner_dir.copy_vocab(config.training.model_dir, config.data.vocab_file)
  return trainer_lib.Trainer(config, alignment_captioner.CaptionerTask(config)).run()


def test_training_writes_checkpoints_and_resumes(prepared, tmp_path):
  manifest = manifest_lib.load(prepared)
  config = captioner_dir.captioner_config_for(manifest, prepared, **dict(SIZES, image_size=32))
  run = _experiment(prepared, str(tmp_path / "run"), config)
  first = _train(run)
  assert first.step == 2 and np.isfinite(first.losses["caption"])
  assert captioner_dir.latest_checkpoint(run.training.model_dir).endswith("ckpt-2")
  assert os.listdir(os.path.join(run.training.model_dir, "train"))  # TensorBoard events
  assert captioner_dir.read_config(run.training.model_dir) == config
  resumed = _train(dataclasses.replace(run, training=dataclasses.replace(run.training,
                                                                         train_steps=3)))
  assert resumed.step == 3
  other = dataclasses.replace(run, model=dataclasses.replace(config, hidden_size=32))
  with pytest.raises(trainer_lib.TrainingError, match="does not fit"):
    _train(other)
  catalog = os.path.join(os.path.dirname(prepared), "demo.h5")
  with pytest.raises(align_config.AlignmentError, match="run python data/prepare.py"):
    inputs.load_prepared(catalog)

