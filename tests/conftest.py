"""Shared test set-up: quiet TensorFlow, no GPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import kaleido  # pylint: disable=unused-import,wrong-import-position  (before TensorFlow: its Keras setting)

# Modules whose tests start training or serving processes, longest first. Under
# `-n 3 --dist loadfile` (the README's command) each module runs on one worker; starting these
# first keeps one long module from running alone at the end of the suite.
LONG_MODULES_FIRST = ("test_training", "test_train_cli", "test_serving", "test_tasks",
                      "test_alignment_records", "test_search", "test_prepare_cli",
                      "test_unet_foreground", "test_checkpoint_recovery", "test_evaluate_cli")


def pytest_collection_modifyitems(items):
  """Puts the LONG_MODULES_FIRST modules first, in that order; the rest keep theirs."""
  def rank(item):
    module = item.module.__name__.rsplit(".", 1)[-1]
    return LONG_MODULES_FIRST.index(module) if module in LONG_MODULES_FIRST else len(
        LONG_MODULES_FIRST)
  items.sort(key=rank)  # stable: the order within a module is kept
