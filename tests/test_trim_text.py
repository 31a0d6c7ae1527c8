"""Text positions cut to a batch's longest text: the same outputs at every real position (all
seven pre-training heads, ITC included, and the retrieval scores), shorter batches from the
pipelines."""

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.model import kaleido_bert
from tests import test_model

OUTPUTS = ("mlm_logits", "itm_logits", "rr_logits", "jps_logits", "cp_logits",
           "g2cm_predictions", "b2cm_predictions", "itc_text", "itc_image")


def test_trimmed_text_gives_the_same_outputs():
  tasks = config_lib.PretrainingConfig(enabled=config_lib.ALL_LOSSES)
  model = kaleido_bert.build_pretrainer(test_model.TINY, tasks)
  batch = test_model.make_batch(test_model.TINY, tasks, batch_size=3, seed=4)
  batch["input_mask"][:, 20:] = 0  # texts of at most 20 tokens in 64 positions
  batch["input_word_ids"] *= batch["input_mask"]
  trimmed = features.trim_text({key: tf.constant(value) for key, value in batch.items()})
  assert trimmed["input_word_ids"].shape == (3, 32) and trimmed["patches"].shape[1] == 55
  whole = model(test_model.model_inputs(model, batch), training=False)
  cut = model(test_model.model_inputs(model, trimmed), training=False)
  for name in OUTPUTS:
    np.testing.assert_allclose(cut[name], whole[name], atol=2e-5, err_msg=name)


def test_trim_keeps_every_real_token_and_rounds_up():
  mask = np.zeros([2, 64], np.int32)
  mask[0, :17], mask[1, :3] = 1, 1
  batch = {"input_mask": tf.constant(mask), "input_word_ids": tf.constant(mask * 7),
           "caption_ids": tf.constant(mask * 5), "product_key": tf.constant([1, 2])}
  trimmed = features.trim_text(batch)
  assert trimmed["input_mask"].shape == (2, 32) and trimmed["caption_ids"].shape == (2, 32)
  np.testing.assert_array_equal(trimmed["input_word_ids"], mask[:, :32] * 7)
  np.testing.assert_array_equal(trimmed["product_key"], [1, 2])
  mask[1] = 1  # a text of all 64 positions keeps them all
  assert features.trim_text({"input_mask": tf.constant(mask)})["input_mask"].shape == (2, 64)
