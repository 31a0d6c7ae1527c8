"""The key/value-cached caption decoder gives the full encoder's log-probabilities and captions."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.evaluation import caption_decoding
from kaleido.model import beam_search
from kaleido.model import caption_decoder
from kaleido.model import kaleido_bert
from kaleido.patches import kaleido_grid

CLS, SEP, PAD, VOCAB, LENGTH = 2, 3, 0, 40, 12


def _captioner(levels=kaleido_grid.LEVELS, fusion_layer=0):
  tf_keras.utils.set_random_seed(3)
  model = config_lib.KaleidoBertConfig(
      vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
      max_seq_length=LENGTH, patch_size=16, patch_cnn="small", feature_size=24,
      kaleido_levels=levels, fusion_layer=fusion_layer)
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


def _uncached_step(captioner, features, boxes, levels=kaleido_grid.LEVELS, beam_size=1):
  """Evaluation's uncached decoding step (the whole encoder under the UniLM mask) for
  `beam_size` beams of each image."""
  return caption_decoding.uncached_caption_step(
      lambda inputs: captioner.backbone(inputs, training=False), captioner.masked_lm,
      np.repeat(features.numpy(), beam_size, axis=0), np.repeat(boxes.numpy(), beam_size, axis=0),
      levels)


@pytest.mark.parametrize("levels, fusion_layer", [(kaleido_grid.LEVELS, 0), ((5,), 0),
                                                  (kaleido_grid.LEVELS, 1)])
def test_cached_log_probabilities_equal_the_full_encoders(levels, fusion_layer):
  captioner, features, boxes = _captioner(levels, fusion_layer)
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
    np.testing.assert_allclose(cached.numpy(), step(tf.constant(tokens), position, ())[0],
                               atol=2e-5, err_msg=f"position {position}")


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_search_finds_the_uncached_searchs_captions(beam_size):
  captioner, features, boxes = _captioner()
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD)
  cached = tf.function(lambda f, b: decoder.beam_search(f, b, beam_size))(features, boxes)
  uncached, _, _ = beam_search.beam_search(
      _uncached_step(captioner, features, boxes, beam_size=beam_size), (), 4, beam_size, LENGTH,
      CLS, SEP, PAD)
  uncached = uncached.numpy()
  np.testing.assert_array_equal(cached.numpy(), uncached)
  # Not a trivial case: the captions differ by image, and some end with [SEP] before the end.
  assert len({tuple(row) for row in uncached}) > 1
  assert (uncached == SEP).any(axis=1).any() and (uncached[:, -1] == PAD).any()


def test_beams_find_other_captions_than_greedy_decoding():
  captioner, features, boxes = _captioner()
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD)
  greedy, beams = (decoder.beam_search(features, boxes, k).numpy() for k in (1, 3))
  assert (greedy != beams).any()
