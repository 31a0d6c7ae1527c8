"""Tests of the UNet foreground estimator on synthetic product-like images."""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from kaleido import config as config_lib
from kaleido.data import fashiongen
from kaleido.dataloaders import foreground as foreground_inputs
from kaleido.demo import groundtruth
from kaleido.patches import foreground
from kaleido.patches import unet_foreground
from kaleido.tasks import foreground_unet
from kaleido.training import trainer as trainer_lib

CONFIG = config_lib.UNetConfig(input_size=32, base_filters=8, depth=2)
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                      "train_foreground.py")


def _synthetic(count: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """Light noisy backgrounds with one dark ellipse or rectangle; returns (images, masks)."""
  rng = np.random.default_rng(seed)
  images, masks = [], []
  for _ in range(count):
    background = rng.integers(200, 256, 3)
    image = np.clip(background + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
    ax, ay = rng.integers(size // 8, size // 3, 2)
    if rng.random() < 0.5:
      cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1, -1)
    else:
      cv2.rectangle(mask, (int(cx - ax), int(cy - ay)), (int(cx + ax), int(cy + ay)), 1, -1)
    image[mask == 1] = rng.integers(0, 120, 3)
    images.append(image)
    masks.append(mask.astype(bool))
  return np.stack(images), np.stack(masks)


def _train(directory: str, images: np.ndarray, masks: np.ndarray, steps: int,
           model: config_lib.UNetConfig = CONFIG, batch_size: int = 16,
           learning_rate: float = 3e-3) -> trainer_lib.TrainResult:
  config = config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=config_lib.FOREGROUND),
      data=config_lib.DataConfig(train_data="synthetic"), model=model,
      optimizer=config_lib.OptimizerConfig(name="adam", learning_rate=learning_rate,
                                           schedule="constant", warmup_steps=0, clip_norm=0.0),
      training=config_lib.TrainingConfig(model_dir=directory, train_steps=steps,
                                         batch_size=batch_size, summary_every=50,
                                         checkpoint_every=50)))
  data = foreground_inputs.MaskedImages(train_images=list(images), train_masks=list(masks))
  return trainer_lib.Trainer(config, foreground_unet.ForegroundTask(config, data)).run()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, trainer_lib.TrainResult]:
  """A tiny UNet trained once for the module; its checkpoint directory and result."""
  directory = str(tmp_path_factory.mktemp("unet"))
  images, masks = _synthetic(96, seed=1)
  return directory, _train(directory, images, masks, steps=150)


def test_learns_held_out_masks(trained):
  directory, result = trained
  assert result.step == 150 and result.losses["iou"] > 0.5
  images, masks = _synthetic(24, seed=2)
  predicted = unet_foreground.UNetForeground.from_checkpoint(directory).masks(images)
  assert predicted.shape == masks.shape and predicted.dtype == bool
  iou = np.mean([unet_foreground.mask_iou(p, t) for p, t in zip(predicted, masks)])
  everything = np.mean([unet_foreground.mask_iou(np.ones_like(t), t) for t in masks])
  assert iou > 0.8 and iou > everything + 0.4


def test_masks_keep_each_image_size(trained):
  estimator = unet_foreground.UNetForeground.from_checkpoint(trained[0])
  assert estimator.masks(np.zeros((3, 50, 70, 3), np.uint8)).shape == (3, 50, 70)
  assert estimator.masks(np.zeros((0, 50, 70, 3), np.uint8)).shape == (0, 50, 70)


def test_build_estimator_selects_unet(trained):
  estimator = foreground.build_estimator(
      foreground.ForegroundConfig(method="unet", unet_checkpoint=trained[0]))
  assert isinstance(estimator, unet_foreground.UNetForeground)
  images, _ = _synthetic(2, seed=4)
  assert estimator.masks(images).shape == (2, 64, 64)


def test_mismatching_config_errors_clearly(trained, tmp_path):
  copy = str(tmp_path / "mismatch")
  shutil.copytree(trained[0], copy)
  run = config_lib.load(copy)
  config_lib.save(dataclasses.replace(
      run, model=dataclasses.replace(run.model, base_filters=16),
      training=dataclasses.replace(run.training, model_dir=copy)))
  with pytest.raises(unet_foreground.CheckpointError, match="does not fit"):
    unet_foreground.UNetForeground.from_checkpoint(copy)


def test_missing_checkpoint_errors_clearly(tmp_path):
  with pytest.raises(unet_foreground.CheckpointError, match="does not exist.*train_foreground"):
    unet_foreground.UNetForeground.from_checkpoint(str(tmp_path / "absent"))
  with pytest.raises(unet_foreground.CheckpointError, match="no run_config.json"):
    unet_foreground.UNetForeground.from_checkpoint(str(tmp_path))


def test_resume_continues_at_saved_step(tmp_path):
  directory = str(tmp_path / "resume")
  images, masks = _synthetic(16, seed=5)
  assert _train(directory, images, masks, steps=3, batch_size=4).step == 3
  assert _train(directory, images, masks, steps=5, batch_size=4).step == 5
  assert len(glob.glob(os.path.join(directory, "train", "events.out.tfevents.*"))) == 2
  other = config_lib.UNetConfig(input_size=32, base_filters=4, depth=2)
  with pytest.raises(trainer_lib.TrainingError, match="does not fit"):
    _train(directory, images, masks, steps=6, model=other, batch_size=4)


def _write_catalog(path: str, with_sidecar: bool) -> None:
  """A Fashion-Gen file of 20 two-view products of synthetic images, and their sidecar."""
  images, masks = _synthetic(40, seed=6)
  products = [fashiongen.FashionGenProduct(
      1000 + i, fashiongen.ProductText("name", "description", "brand", "gender", "season",
                                       "composition", "department", 1.0),
      "category", "subcategory", list(images[2 * i:2 * i + 2]),
      ["id_gridfs_1", "id_gridfs_2"]) for i in range(20)]
  fashiongen.write_fashiongen(path, products, image_size=64)
  if with_sidecar:
    groundtruth.save(path, [groundtruth.ImageTruth(
        row, str(1000 + row // 2), groundtruth.mask_box(mask), mask, [])
                            for row, mask in enumerate(masks)])


def _run_script(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        check=False, cwd="/")


def test_script_trains_and_reports_held_out_iou(tmp_path):
  catalog = str(tmp_path / "catalog.h5")
  _write_catalog(catalog, with_sidecar=True)
  output_dir = str(tmp_path / "unet")
  result = _run_script("--input", catalog, "--output_dir", output_dir, "--steps", "20",
                       "--input_size", "32", "--base_filters", "8", "--depth", "2",
                       "--holdout_fraction", "0.3")
  assert result.returncode == 0, result.stderr
  assert "held-out unet       mask IoU" in result.stdout
  assert "box IoU" in result.stdout
  assert sorted(os.listdir(output_dir)) == ["checkpoints", "heldout", "run_config.json", "train"]


def test_script_errors_in_one_sentence_without_sidecar(tmp_path):
  catalog = str(tmp_path / "catalog.h5")
  _write_catalog(catalog, with_sidecar=False)
  result = _run_script("--input", catalog, "--output_dir", str(tmp_path / "unet"))
  assert result.returncode == 1
  assert "no ground-truth sidecar" in result.stderr and "--masks classical" in result.stderr
  assert "Traceback" not in result.stderr
