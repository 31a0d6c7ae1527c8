"""The key/value-cached caption decoder gives the full encoder's log-probabilities and captions."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.evaluation import caption_decoding
from kaleido.model import caption_decoder
from kaleido.model import kaleido_bert
from kaleido.patches import kaleido_grid

CLS, SEP, PAD, VOCAB, LENGTH = 2, 3, 0, 40, 12


def _captioner(levels=kaleido_grid.LEVELS):
  tf_keras.utils.set_random_seed(3)
  model = config_lib.KaleidoBertConfig(
      vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
      max_seq_length=LENGTH, patch_size=16, backbone="small", feature_size=24,
      kaleido_levels=levels)
  captioner = kaleido_bert.build_finetune_model(config_lib.TaskConfig(name="caption"), model)
  # Larger weights than the initial ones and a nudge towards [SEP]: captions that differ by
  # image, beams that differ from greedy decoding, and beams that end before the last position.
  for variable in captioner.trainable_variables:
    if len(variable.shape) >= 2:
      variable.assign(variable * 3.0)
  bias = next(v for v in captioner.masked_lm.weights if "output_bias" in v.name)
  bias.assign(tf.one_hot(SEP, VOCAB) * 0.5)
  rng = np.random.default_rng(0)
  features = tf.constant(rng.normal(size=(4, kaleido_grid.NUM_PATCHES, 24)) * 3, tf.float32)
  boxes = tf.constant(rng.uniform(size=(4, kaleido_grid.NUM_PATCHES, 5)), tf.float32)
  return captioner, features, boxes


def _uncached_step(captioner, features, boxes, levels=kaleido_grid.LEVELS):
  """The step of evaluation's uncached decoder: the whole encoder under the UniLM mask."""

  def step(tokens, position, rows):
    input_mask = np.zeros_like(tokens)
    input_mask[:, :position] = 1
    inputs = {"input_word_ids": tf.constant(tokens), "input_mask": tf.constant(input_mask),
              "patch_boxes": tf.gather(boxes, rows), "patch_features": tf.gather(features, rows),
              "attention_mask": kaleido_bert.unilm_attention_mask(
                  tf.constant(input_mask), kaleido_grid.visible_patches(levels))}
    sequence = captioner.backbone(inputs, training=False)["sequence_output"]
    logits = captioner.masked_lm(sequence, masked_positions=tf.fill([len(rows), 1],
                                                                    position - 1))
    return tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)).numpy()

  return step


@pytest.mark.parametrize("levels", [kaleido_grid.LEVELS, (5,)])
def test_cached_log_probabilities_equal_the_full_encoders(levels):
  captioner, features, boxes = _captioner(levels)
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD, levels)
  tokens = np.full((4, LENGTH), PAD, np.int32)
  tokens[:, 0] = CLS
  tokens[:, 1:6] = np.random.default_rng(1).integers(5, VOCAB, size=(4, 5))
  patch_cache = decoder._patch_cache(features, boxes)  # pylint: disable=protected-access
  text_cache = decoder._empty_text_cache(patch_cache, 4)  # pylint: disable=protected-access
  patch_mask = tf.tile(decoder._visible[tf.newaxis, tf.newaxis], [4, 1, 1])  # pylint: disable=protected-access
  step = _uncached_step(captioner, features, boxes, levels)
  for position in range(1, 7):
    cached, text_cache = decoder._log_probs(tf.constant(tokens), position - 1, text_cache,  # pylint: disable=protected-access
                                            patch_cache, patch_mask)
    np.testing.assert_allclose(cached.numpy(), step(tokens, position, np.arange(4)),
                               atol=2e-5, err_msg=f"position {position}")


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_search_finds_the_uncached_searchs_captions(beam_size):
  captioner, features, boxes = _captioner()
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD)
  cached = tf.function(lambda f, b: decoder.beam_search(f, b, beam_size))(features, boxes)
  uncached = caption_decoding.beam_search(_uncached_step(captioner, features, boxes), 4, LENGTH,
                                          CLS, SEP, PAD, beam_size)
  np.testing.assert_array_equal(cached.numpy(), uncached)
  # Not a trivial case: the captions differ by image, and some end with [SEP] before the end.
  assert len({tuple(row) for row in uncached}) > 1
  assert (uncached == SEP).any(axis=1).any() and (uncached[:, -1] == PAD).any()


def test_beams_find_other_captions_than_greedy_decoding():
  captioner, features, boxes = _captioner()
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD)
  greedy, beams = (decoder.beam_search(features, boxes, k).numpy() for k in (1, 3))
  assert (greedy != beams).any()
