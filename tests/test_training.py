"""Pre-training under tf.distribute: loss parity across strategies, resume, SIGTERM, TensorBoard.

Each run is a fresh process (tests/distributed_run.py or train.py), because logical CPU devices
and TF_CONFIG must be set before TensorFlow starts.
"""

import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO_ROOT, "tests", "distributed_run.py")
LOSSES = ("amlm", "itm", "rr", "jps", "cp", "g2cm", "b2cm", "total")


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  """A small prepared demo folder: 16-pixel patches, 32 text positions, 2 shards."""
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("pretrain_data")), 24, seed=3,
                                num_shards=2)


def _run(data, model_dir, *args, env=None, **kwargs):
  return subprocess.Popen([sys.executable, RUNNER, f"--data={data}", f"--model_dir={model_dir}",
                           *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})}, **kwargs)


def _result(process, timeout=400):
  stdout, stderr = process.communicate(timeout=timeout)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1]), stderr


def _assert_close(losses, reference, tolerance):
  for name in LOSSES:
    assert losses[name] == pytest.approx(reference[name], rel=tolerance, abs=tolerance), name


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module", name="single_device")
def fixture_single_device(data, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("one_device"))
  result, _ = _result(_run(data, model_dir, "--strategy=one_device"))
  return result, model_dir


def test_one_device_trains_and_writes_tensorboard(single_device):
  result, model_dir = single_device
  assert result["step"] == 3
  assert set(LOSSES) <= set(result["losses"])
  events = glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
  accumulator = event_accumulator.EventAccumulator(events[0], size_guidance={"tensors": 0})
  accumulator.Reload()
  tags = " ".join(accumulator.Tags()["tensors"])
  for name in LOSSES + ("learning_rate", "examples_per_second", "itm_accuracy"):
    assert name in tags, tags
  assert "kaleido_patches_after_transforms" in tags


def test_mirrored_two_replicas_matches_one_device(data, single_device, tmp_path):
  result, _ = _result(_run(data, str(tmp_path), "--strategy=mirrored", "--logical_cpus=2"))
  _assert_close(result["losses"], single_device[0]["losses"], 1e-4)


def test_multi_worker_two_processes_matches_one_device(data, single_device, tmp_path):
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"localhost:{port}" for port in ports]}
  processes = [
      _run(data, str(tmp_path), "--strategy=multi_worker_mirrored",
           env={"TF_CONFIG": json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}})})
      for index in range(2)]
  results = [_result(p)[0] for p in processes]
  for result in results:
    _assert_close(result["losses"], single_device[0]["losses"], 1e-4)
  # Both workers share --model_dir: only the chief's summaries and checkpoints stay there.
  assert len(glob.glob(str(tmp_path / "train" / "events.out.tfevents.*"))) == 1
  assert glob.glob(str(tmp_path / "checkpoints" / "ckpt-3.index"))
  assert not glob.glob(str(tmp_path / ".scratch-*"))


def test_xla_compiled_steps_match_one_device(data, single_device, tmp_path):
  result, _ = _result(_run(data, str(tmp_path), "--jit_compile"))
  _assert_close(result["losses"], single_device[0]["losses"], 1e-4)


def test_xla_with_several_replicas_is_one_clear_error(data, tmp_path):
  process = _run(data, str(tmp_path), "--strategy=mirrored", "--logical_cpus=2", "--jit_compile")
  _, stderr = process.communicate(timeout=400)
  assert process.returncode != 0 and "--jit_compile runs on one replica only" in stderr


def test_resume_continues_at_the_saved_step(data, tmp_path):
  model_dir = str(tmp_path)
  first, _ = _result(_run(data, model_dir, "--steps=2", "--checkpoint_every=1"))
  assert first["step"] == 2
  second, stderr = _result(_run(data, model_dir, "--steps=4"))
  assert "at step 2" in stderr and second["step"] == 4
  assert os.path.basename(sorted(glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index")))
                          [-1]) == "ckpt-4.index"


def test_sigterm_saves_and_a_rerun_resumes(data, tmp_path):
  model_dir = str(tmp_path)
  process = _run(data, model_dir, "--steps=100000")
  deadline = time.monotonic() + 300
  while not glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    assert time.monotonic() < deadline and process.poll() is None
    time.sleep(0.5)
  time.sleep(3)  # let it take a few steps
  process.send_signal(signal.SIGTERM)
  result, stderr = _result(process)
  assert result["interrupted"] and "Stopped by SIGTERM" in stderr
  stopped_at = result["step"]
  assert glob.glob(os.path.join(model_dir, "checkpoints", f"ckpt-{stopped_at}.index"))
  resumed, stderr = _result(_run(data, model_dir, f"--steps={stopped_at + 1}"))
  assert f"at step {stopped_at}" in stderr and resumed["step"] == stopped_at + 1


def test_mixed_bfloat16_matches_float32(data, single_device, tmp_path):
  result, _ = _result(_run(data, str(tmp_path), "--mixed_precision=mixed_bfloat16"))
  assert result["step"] == 3
  # Same data and initial weights as float32: the losses agree to bfloat16 accuracy.
  _assert_close(result["losses"], single_device[0]["losses"], 0.05)


def test_mixed_float16_trains_with_loss_scaling(data, tmp_path):
  # The dynamic loss scale skips the first updates whose scaled gradients overflow, so the
  # weights (and losses) after 3 steps differ from float32; they must stay finite.
  result, _ = _result(_run(data, str(tmp_path), "--mixed_precision=mixed_float16"))
  assert result["step"] == 3
  assert all(math.isfinite(result["losses"][name]) for name in LOSSES)
