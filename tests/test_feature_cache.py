"""The feature cache: cached batches equal the patch CNN on the pixel batches, losses match,
stale caches are never read, interrupted builds resume, bad caches get one sentence."""

import dataclasses
import functools
import glob
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.feature_cache import beam_builder
from kaleido.feature_cache import builder
from kaleido.feature_cache import store
from kaleido.model import patch_embedder
from kaleido.patches import variants
from kaleido.pretrained import resnet
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.utils import files
from kaleido.tasks import factory
from tests import catalogs
from tests import distributed_run

BUILD_TOOL = str(pathlib.Path(__file__).resolve().parent.parent / "data" / "build_feature_cache.py")
FLOAT16_TOLERANCE = 4e-3  # half an ulp of float16 at |x| < 8, with slack for float32 sums


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  """A tiny prepared demo folder in 2 shards (16-pixel patches)."""
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("cache_data")), 12, seed=5,
                                num_shards=2)


def _task_and_model(data, tmp_path, patch_features, task="pretrain"):
  config = catalogs.tiny_experiment(
      data, str(tmp_path / patch_features), task=task,
      data_options={"patch_features": patch_features,
                    "feature_cache_dir": str(tmp_path / "caches")})
  task_object = factory.create_task(config)
  model = task_object.build_model()
  task_object.prepare_inputs(model)
  return task_object, model


def _embed(model, pixels):
  """The frozen patch CNN of `model` on (B, N, P, P, 3) pixels."""
  return model.backbone.patch_embedder(tf.constant(pixels), training=False).numpy()


def test_each_variant_feature_is_the_patch_cnn_on_those_pixels(data, tmp_path):
  task, model = _task_and_model(data, tmp_path, "cached")
  cache = task.feature_cache()
  manifest = manifest_lib.load(data)
  pixels = next(iter(tf.data.TFRecordDataset(manifest.shard_paths(data)[0]).map(
      lambda record: reader.decode(record, reader.reader_config(manifest)))))
  (cached,) = tf.data.TFRecordDataset(cache.shard_paths[0]).take(1).map(
      lambda record: store.parse(record, cache.feature_size))
  assert cached["image_id"].numpy() == pixels["image_id"].numpy()
  assert cached["patch_variants"].dtype == tf.float16
  table = variants.pixel_variants(pixels["patches"])[tf.newaxis]
  expected = _embed(model, table)[0]
  np.testing.assert_allclose(cached["patch_variants"].numpy(), expected,
                             atol=FLOAT16_TOLERANCE * max(1.0, np.abs(expected).max()))
  assert np.abs(expected[55] - expected[0]).max() > 1e-3  # a turned L1 patch is another feature


def test_cached_batches_are_the_pixel_batches_with_the_patch_cnn_applied(data, tmp_path):
  cached_task, model = _task_and_model(data, tmp_path, "cached")
  pixel_task, _ = _task_and_model(data, tmp_path, "pixels")
  cached = next(iter(cached_task.dataset(6, 11, None)))
  pixels = next(iter(pixel_task.dataset(6, 11, None)))
  assert set(cached) - {"patch_features", "grey_target_features"} == (
      set(pixels) - {"patches", "grey_targets"})
  for key in set(cached) & set(pixels):
    np.testing.assert_array_equal(cached[key], pixels[key], err_msg=key)
  for feature_key, pixel_key in (("patch_features", "patches"),
                                 ("grey_target_features", "grey_targets")):
    expected = _embed(model, pixels[pixel_key])
    np.testing.assert_allclose(cached[feature_key].numpy(), expected,
                               atol=FLOAT16_TOLERANCE * max(1.0, np.abs(expected).max()),
                               err_msg=feature_key)
  assert 0 < int(tf.reduce_sum(pixels["rr_label"])) and 0 < int(tf.reduce_sum(pixels["jps_label"]))
  assert 0 < int(tf.reduce_sum(1 - pixels["itm_label"]))  # negatives swapped whole image sides


def test_finetuning_batches_read_the_same_features(data, tmp_path):
  cached_task, model = _task_and_model(data, tmp_path, "cached", task="retrieval")
  pixel_task, _ = _task_and_model(data, tmp_path, "pixels", task="retrieval")
  cached = next(iter(cached_task.dataset(4, 2, None)))
  pixels = next(iter(pixel_task.dataset(4, 2, None)))
  np.testing.assert_array_equal(cached["itm_label"], pixels["itm_label"])
  np.testing.assert_array_equal(cached["input_word_ids"], pixels["input_word_ids"])
  expected = _embed(model, pixels["patches"])
  np.testing.assert_allclose(cached["patch_features"].numpy(), expected,
                             atol=FLOAT16_TOLERANCE * max(1.0, np.abs(expected).max()))


def _losses_at(data, model_dir, patch_features, step):
  distributed_run.train(data, str(model_dir), steps=step, batch_size=6, dropout=0.1,
                        data_options={"patch_features": patch_features})
  from tests.test_training import _step_losses  # pylint: disable=g-import-not-at-top
  return _step_losses(str(model_dir), step)


def test_thirty_steps_give_the_same_losses_from_pixels_and_from_the_cache(data, tmp_path):
  pixels = _losses_at(data, tmp_path / "pixels", "pixels", 30)
  cached = _losses_at(data, tmp_path / "cached", "cached", 30)
  for name, value in pixels.items():
    assert cached[name] == pytest.approx(value, rel=1e-3, abs=1e-5), name
  assert glob.glob(os.path.join(data, store.DEFAULT_ROOT, "*", "features-*"))


def _count_embeds(embed):
  calls = []

  def counted(patches):
    calls.append(int(patches.shape[0]))
    return embed(patches)
  return counted, calls


def test_cache_is_reused_and_a_new_patch_cnn_or_new_records_get_a_new_one(data, tmp_path):
  embedder = patch_embedder.PatchEmbedder("small", 16, 64)
  root = str(tmp_path / "caches")
  first = builder.ensure_cache(data, embedder, root, log=lambda _: None)
  plan = builder.plan(data, builder.fingerprint(embedder), 64, root)
  counted, calls = _count_embeds(builder.embed_function(embedder))
  assert builder.build(plan, counted, log=lambda _: None) == first and not calls  # reused
  weight = embedder.cnn.weights[0]
  weight.assign(weight + 1.0)
  assert builder.ensure_cache(data, embedder, root, log=lambda _: None).folder != first.folder
  manifest = manifest_lib.load(data)
  reprepared = dataclasses.replace(manifest, shards=[
      {**manifest.shards[0], "sha256": "0" * 64}, *manifest.shards[1:]])
  assert (store.records_fingerprint(data, reprepared) !=
          store.records_fingerprint(data, manifest))  # shards of other bytes: another cache


def test_a_cache_written_before_the_patch_cnn_rename_is_not_read(data, tmp_path):
  embedder = patch_embedder.PatchEmbedder("small", 16, 64)
  cache = builder.ensure_cache(data, embedder, str(tmp_path), log=lambda _: None)
  plan = builder.plan(data, builder.fingerprint(embedder), 64, str(tmp_path))
  info = store.read_info(cache.folder)
  assert info["format"] == store.FORMAT and info["patch_cnn"] == builder.fingerprint(embedder)
  old = {key: value for key, value in info.items() if key != "patch_cnn"}  # keyed by the old name
  files.write_json(os.path.join(cache.folder, store.CACHE_NAME),
                   {**old, "format": "kaleido-feature-cache/1"})
  assert store.load(cache.folder, plan.identity) is None


def test_a_killed_build_resumes_at_its_missing_shard(data, tmp_path):
  embedder = patch_embedder.PatchEmbedder("small", 16, 64)
  plan = builder.plan(data, builder.fingerprint(embedder), 64, str(tmp_path))
  embed = builder.embed_function(embedder)

  def dies_on_the_second_shard(patches):
    if os.path.exists(plan.output_path(0)):
      raise KeyboardInterrupt
    return embed(patches)

  with pytest.raises(KeyboardInterrupt):
    builder.build(plan, dies_on_the_second_shard, batch_size=4, log=lambda _: None)
  assert plan.pending() == [1] and not store.load(plan.folder, plan.identity)
  dead = plan.output_path(1) + ".tmp-999999999"  # what kill -9 mid-shard leaves behind
  with open(dead, "wb") as f:
    f.write(b"partial")
  counted, calls = _count_embeds(embed)
  cache = builder.build(plan, counted, batch_size=4, log=lambda _: None)
  assert sum(calls) == plan.num_examples[1] and not os.path.exists(dead)
  assert len(cache.shard_paths) == 2


def test_ctrl_c_finishes_the_shard_in_hand_and_stops(data, tmp_path, capsys):
  embedder = patch_embedder.PatchEmbedder("small", 16, 64)
  plan = builder.plan(data, builder.fingerprint(embedder), 64, str(tmp_path))
  embed = builder.embed_function(embedder)

  def ctrl_c_on_the_first_batch(patches):
    if not os.path.exists(plan.output_path(0)) and not sent:
      sent.append(True)
      os.kill(os.getpid(), signal.SIGINT)
    return embed(patches)

  sent = []
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
  try:
    with pytest.raises(KeyboardInterrupt):
      builder.build(plan, ctrl_c_on_the_first_batch, batch_size=4, log=lambda _: None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
  finally:
    signal.signal(signal.SIGINT, previous)
  assert sent and plan.pending() == [1]  # the shard in hand was finished, the next not begun
  assert "stopping after the shard in hand" in capsys.readouterr().err
  assert len(builder.build(plan, embed, batch_size=4, log=lambda _: None).shard_paths) == 2


def test_a_truncated_cache_shard_is_refused_in_one_sentence(data, tmp_path):
  embedder = patch_embedder.PatchEmbedder("small", 16, 64)
  cache = builder.ensure_cache(data, embedder, str(tmp_path), log=lambda _: None)
  with open(cache.shard_paths[0], "r+b") as shard:
    shard.truncate(100)
  with pytest.raises(store.FeatureCacheError, match="delete .* and rerun"):
    builder.ensure_cache(data, embedder, str(tmp_path), log=lambda _: None)


def test_cached_features_with_a_trainable_patch_cnn_are_refused(data, tmp_path):
  config = catalogs.tiny_experiment(data, str(tmp_path))
  trainable = dataclasses.replace(
      config, model=dataclasses.replace(config.model, patch_cnn_trainable=True))
  cached = dataclasses.replace(
      trainable, data=dataclasses.replace(config.data, patch_features="cached"))
  with pytest.raises(config_lib.ConfigError, match="--patch_features=pixels"):
    config_lib.validate(cached)
  assert config_lib.uses_feature_cache(config)  # auto: cached while the patch CNN is frozen
  assert not config_lib.uses_feature_cache(config_lib.validate(trainable))


def test_beam_and_the_tool_write_the_caches_train_py_reuses(data, tmp_path):
  weights = str(tmp_path / "small.h5")
  patch_embedder.PatchEmbedder("small", 16, 64).cnn.save_weights(weights)
  make_embedder = functools.partial(resnet.frozen_embedder, "small", 16, 64, weights)
  embedder = make_embedder()
  local = builder.ensure_cache(data, embedder, str(tmp_path / "local"), log=lambda _: None)
  plan = builder.plan(data, builder.fingerprint(embedder), 64, str(tmp_path / "beam"))
  on_beam = beam_builder.build(plan, make_embedder, batch_size=4, runner="DirectRunner")
  for a, b in zip(local.shard_paths, on_beam.shard_paths):
    with open(a, "rb") as first, open(b, "rb") as second:
      assert first.read() == second.read()
  result = subprocess.run(
      [sys.executable, BUILD_TOOL, f"--data={data}", "--patch_cnn=small", "--feature_size=64",
       f"--patch_cnn_weights={weights}", f"--feature_cache_dir={tmp_path / 'tool'}"],
      capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  # A run whose frozen patch CNN holds those weights finds the tool's cache complete.
  counted, calls = _count_embeds(builder.embed_function(embedder))
  reused = builder.build(builder.plan(data, builder.fingerprint(embedder), 64,
                                      str(tmp_path / "tool")), counted, log=lambda _: None)
  assert not calls and reused.folder in result.stdout
