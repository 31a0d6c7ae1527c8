"""Pre-training under tf.distribute: loss parity across strategies, resume, SIGTERM, TensorBoard.

Runs under several replicas or workers are fresh processes (tests/distributed_run.py), because
logical CPU devices and TF_CONFIG must be set before TensorFlow starts; the one-device variants
(XLA, mixed precision) run the same training in the test's own process.
"""

import dataclasses
import gc
import glob
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorboard.backend.event_processing import event_accumulator

from kaleido import config as config_lib
from kaleido import errors
from kaleido.tasks import factory
from kaleido.training import trainer as trainer_lib
from kaleido.utils import cli
from kaleido.utils import interrupts
from tests import catalogs
from tests import distributed_run

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = "tests.distributed_run"  # run as a module from the repository root
LOSSES = ("amlm", "itm", "rr", "jps", "cp", "g2cm", "b2cm", "total")


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  """A small prepared demo folder: 16-pixel patches, 32 text positions, 2 shards."""
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("pretrain_data")), 24, seed=3,
                                num_shards=2)


def _run(data, model_dir, *args, env=None, **kwargs):
  return subprocess.Popen([sys.executable, "-m", RUNNER, f"--data={data}",
                           f"--model_dir={model_dir}", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, **kwargs)


def _result(process, timeout=400):
  stdout, stderr = process.communicate(timeout=timeout)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1]), stderr


def _in_process(data, model_dir, **training):
  """distributed_run.train in this process on one device; the float32 policy restored after."""
  try:
    return distributed_run.train(data, model_dir, **training)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def _assert_close(losses, reference, tolerance):
  for name in LOSSES:
    assert losses[name] == pytest.approx(reference[name], rel=tolerance, abs=tolerance), name


def _step_losses(model_dir, step):
  """{loss name: value} that a run's TensorBoard holds for `step` (summary_every=1)."""
  events = glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
  accumulator = event_accumulator.EventAccumulator(events[0], size_guidance={"tensors": 0})
  accumulator.Reload()
  values = {}
  for name in LOSSES:
    (event,) = [e for e in accumulator.Tensors(f"loss/{name}") if e.step == step]
    values[name] = float(tf.make_ndarray(event.tensor_proto))
  return values


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module", name="single_device")
def fixture_single_device(data, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("one_device"))
  result, _ = _result(_run(data, model_dir, "--strategy=one_device", "--eval_every=3",
                           "--keep_best=itm_accuracy"))
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
  # Held-out figures of the seven losses, their total and the accuracies, beside the training
  # ones, and the best checkpoint by validation ITM accuracy kept apart.
  for name in LOSSES + ("itm_accuracy", "mlm_accuracy", "cp_accuracy"):
    assert f"validation/{name}" in tags, tags
  assert set(LOSSES) <= set(result["validation"])
  best = json.load(open(os.path.join(model_dir, "best", "best.json"), encoding="utf-8"))
  assert best["step"] == 3 and best["value"] == result["validation"]["itm_accuracy"]
  assert glob.glob(os.path.join(model_dir, "best", "ckpt-3.index"))


def test_mirrored_two_replicas_matches_one_device(data, single_device, tmp_path):
  result, _ = _result(_run(data, str(tmp_path), "--strategy=mirrored", "--logical_cpus=2",
                           "--eval_every=3"))
  _assert_close(result["losses"], single_device[0]["losses"], 1e-4)
  # The held-out evaluation under the strategy gives the one-device figures.
  _assert_close(result["validation"], single_device[0]["validation"], 1e-4)


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
  result = _in_process(data, str(tmp_path), jit_compile=True)
  _assert_close(result["losses"], single_device[0]["losses"], 1e-4)


def test_xla_with_several_replicas_is_one_clear_error(data, tmp_path):
  # The Trainer validates its config against strategy.num_replicas_in_sync (the mirrored test
  # above runs through that call); the check itself, without a second process:
  config = catalogs.tiny_experiment(data, str(tmp_path), training={"jit_compile": True})
  assert config_lib.validate(config, replicas=1) == config
  with pytest.raises(config_lib.ConfigError, match="--jit_compile runs on one replica only"):
    config_lib.validate(config, replicas=2)


def test_sigterm_saves_a_checkpoint_at_the_step_it_stopped(data, tmp_path):
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
  # The checkpoint written on SIGTERM holds the step it stopped at; that a rerun restores every
  # value from a checkpoint is test_resume_restores_every_variable_and_optimizer_slot_and_continues.
  saved = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{stopped_at}"))
  assert saved.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == stopped_at


def test_ctrl_c_and_sigterm_request_a_stop_and_a_second_ctrl_c_interrupts():
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
  try:
    for number, description in ((signal.SIGINT, "Ctrl-C (SIGINT)"), (signal.SIGTERM, "SIGTERM")):
      with interrupts.StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), number)
        time.sleep(0.1)
        assert stop.requested and stop.description == description
        with pytest.raises(errors.Stopped) as stopped:
          trainer_lib.stop_if_interrupted(trainer_lib.TrainResult(
              step=3, losses={}, interrupted=True, stop_signal=stop.signal_number))
        assert stopped.value.exit_status == 128 + number
        if number == signal.SIGINT:  # an impatient second Ctrl-C
          with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
  finally:
    signal.signal(signal.SIGINT, previous)


def test_commands_end_in_one_line_and_the_signal_status(capsys):
  def interrupted(argv):
    del argv
    raise KeyboardInterrupt

  def stopped(argv):
    del argv
    raise errors.Stopped(143)

  for main, status in ((interrupted, 130), (stopped, 143)):
    with pytest.raises(SystemExit) as exit_:
      cli.user_errors_as_messages(main)([])
    assert exit_.value.code == status
  assert capsys.readouterr().err == ("Interrupted by Ctrl-C; finished work is kept (rerun the "
                                     "same command to go on).\n")


def test_mixed_bfloat16_matches_float32(data, single_device, tmp_path):
  result = _in_process(data, str(tmp_path), mixed_precision="mixed_bfloat16")
  assert result["step"] == 3
  # Same data and initial weights as float32: the losses agree to bfloat16 accuracy.
  _assert_close(result["losses"], single_device[0]["losses"], 0.05)


def test_mixed_float16_first_step_matches_float32_and_training_stays_finite(data, single_device,
                                                                          tmp_path):
  # Step 1's losses come from the same batch and initial weights, before any update: float16
  # must agree with float32 within 2% (its 11-bit significand over a tiny model). After it, the
  # dynamic loss scale skips the first updates whose scaled gradients overflow, so later losses
  # differ from float32; they must stay finite.
  result = _in_process(data, str(tmp_path), mixed_precision="mixed_float16")
  _assert_close(_step_losses(str(tmp_path), 1), _step_losses(single_device[1], 1), 0.02)
  assert result["step"] == 3
  assert all(math.isfinite(value) for step in (2, 3)
             for value in _step_losses(str(tmp_path), step).values())


def test_resume_restores_every_variable_and_optimizer_slot_and_continues(data, tmp_path, capfd,
                                                                         caplog):
  config = catalogs.tiny_experiment(data, str(tmp_path), train_steps=2, dropout=0.1,
                                    training={"checkpoint_every": 1})
  first = trainer_lib.Trainer(config, factory.create_task(config))
  first.run()
  weights = [variable.numpy() for variable in first.model.weights]

  def slots(trainer):
    optimizer = trainer.optimizer
    return [optimizer.get_slot(variable, name).numpy()
            for variable in trainer.model.trainable_variables for name in ("m", "v")]

  saved_slots, saved_iterations = slots(first), int(first.optimizer.iterations.numpy())
  longer = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                    train_steps=4))
  resumed = trainer_lib.Trainer(longer, factory.create_task(longer))
  assert resumed._restore() == 2  # pylint: disable=protected-access
  # Slots are created (and filled from the checkpoint) before the first update.
  resumed.optimizer._create_all_weights(resumed.model.trainable_variables)  # pylint: disable=protected-access
  assert len(resumed.model.weights) == len(weights)
  for variable, value in zip(resumed.model.weights, weights):
    np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.name)
  assert int(resumed.optimizer.iterations.numpy()) == saved_iterations == 2
  restored_slots = slots(resumed)
  assert len(restored_slots) == len(saved_slots) == 2 * len(resumed.model.trainable_variables)
  for restored, saved in zip(restored_slots, saved_slots):
    assert np.abs(saved).max() > 0  # the slot holds two steps' moments, not its initial zeros
    np.testing.assert_array_equal(restored, saved)
  # And it trains on from there to the new last step.
  assert resumed.run().step == 4
  assert "at step 2" in capfd.readouterr().err
  assert os.path.basename(sorted(glob.glob(os.path.join(str(tmp_path), "checkpoints",
                                                        "ckpt-*.index")))[-1]) == "ckpt-4.index"
  # A rerun of the finished run does nothing and restores what it builds without a warning about
  # the optimizer slots it never creates.
  finished = trainer_lib.Trainer(longer, factory.create_task(longer))
  assert finished.run() == trainer_lib.TrainResult(step=4, losses={})
  del finished
  gc.collect()
  assert "Nothing to do" in capfd.readouterr().err
  assert "could not be found" not in caplog.text
