"""The Show-Attend-Tell captioner: shapes, attention normalisation, decoding and the loss."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import decoding
from kaleido.tasks import alignment_captioner

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(27)]


def _config(**overrides) -> config_lib.CaptionerConfig:
  values = dict(vocab_size=len(VOCAB), vocab_hash="0" * 64, cls_id=2, sep_id=3, pad_id=0,
                cnn="small", image_size=64, feature_size=16, embedding_size=8,
                hidden_size=16, attention_size=8, dropout=0.0, max_length=7)
  values.update(overrides)
  return config_lib.CaptionerConfig(**values)


@pytest.fixture(scope="module", name="captioner")
def _captioner() -> captioner_lib.Captioner:
  tf_keras.utils.set_random_seed(1)
  return captioner_lib.Captioner(_config())


def _images(count: int, size: int = 64) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_teacher_forcing_shapes_and_attention_sums_to_one(captioner):
  outputs = captioner({"image": _images(2), "input_ids": np.array([[2, 5, 6, 7, 8]] * 2)})
  assert outputs["logits"].shape == (2, 5, len(VOCAB))
  assert outputs["attention"].shape == (2, 5, 16)  # 64 px / stride 16 = 4 x 4 cells
  np.testing.assert_allclose(outputs["attention"].numpy().sum(-1), 1.0, rtol=1e-5)
  gate = outputs["gate"].numpy()
  assert gate.shape == (2, 5) and ((gate > 0) & (gate < 1)).all()
  # The attention depends on the image: another image, other maps.
  other = captioner({"image": 255 - _images(2), "input_ids": np.array([[2, 5, 6, 7, 8]] * 2)})
  assert not np.allclose(other["attention"].numpy(), outputs["attention"].numpy())


def test_small_grid_cells_see_their_own_square_of_the_crop():
  cnn = captioner_lib.build_cnn("small", 128)  # 8 x 8 cells of 16 pixels
  pixels = tf.Variable(np.random.default_rng(1).normal(size=(1, 128, 128, 3)).astype(np.float32))
  for row, col in ((2, 3), (5, 4)):  # inner cells: the border's zero padding pulls inwards
    with tf.GradientTape() as tape:
      energy = tf.reduce_sum(tf.square(cnn(pixels, training=False)[0, row, col]))
    weight = np.abs(tape.gradient(energy, pixels).numpy()[0]).sum(-1)
    centre_y = (weight.sum(1) * np.arange(128)).sum() / weight.sum()
    centre_x = (weight.sum(0) * np.arange(128)).sum() / weight.sum()
    # Cell (row, col) covers pixels 16 * col .. 16 * col + 15: centre 16 * col + 7.5.
    assert centre_y == pytest.approx(16 * row + 7.5, abs=1.5)
    assert centre_x == pytest.approx(16 * col + 7.5, abs=1.5)


def _experiment(tmp_path, model: config_lib.CaptionerConfig,
                cnn_weights: str = "") -> config_lib.ExperimentConfig:
  return config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=config_lib.CAPTIONER), model=model,
      init=config_lib.InitConfig(patch_cnn_weights=cnn_weights),
      training=config_lib.TrainingConfig(model_dir=str(tmp_path / "run")))


def test_resnet50_feature_grid_shapes(tmp_path):
  assert _config(cnn="resnet50", image_size=224).grid_size == 7
  assert _config(cnn="resnet50", image_size=448).grid_size == 14
  with pytest.raises(config_lib.ConfigError, match="multiple of 32"):
    config_lib.validate(_experiment(tmp_path, _config(cnn="resnet50", image_size=100)))
  model = captioner_lib.Captioner(_config(cnn="resnet50", image_size=64))
  features, keys = model.encode(_images(1))
  assert features.shape == (1, 4, 16) and keys.shape == (1, 4, 8)  # 2 x 2 cells
  outputs = model({"image": _images(1), "input_ids": np.array([[2, 5, 6]])})
  assert outputs["attention"].shape == (1, 3, 4)


def test_cnn_weights_file_is_loaded_by_the_task(tmp_path, captioner):
  path = str(tmp_path / "cnn.h5")
  captioner.cnn.save_weights(path, save_format="h5")
  loaded = captioner_lib.Captioner(_config())
  task = alignment_captioner.CaptionerTask(_experiment(tmp_path, _config(), path))
  assert path in task.initialize(loaded)
  for mine, theirs in zip(captioner.cnn.weights, loaded.cnn.weights):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
  not_weights = tmp_path / "notes.h5"
  not_weights.write_text("not an HDF5 file")
  task = alignment_captioner.CaptionerTask(_experiment(tmp_path, _config(), str(not_weights)))
  with pytest.raises(errors.KaleidoError, match="neither a Keras .h5 weights file"):
    task.initialize(captioner_lib.Captioner(_config()))


def _teacher_forced(captioner, image, tokens, ended) -> tuple[float, np.ndarray]:
  """Log-probability of a caption (plus [SEP] when it ended) and its attention maps."""
  full = [2] + list(tokens) + ([3] if ended else [])
  outputs = captioner({"image": image[None], "input_ids": np.array([full[:-1]])})
  log_probs = tf.nn.log_softmax(outputs["logits"][0]).numpy()
  return (float(sum(log_probs[t, full[t + 1]] for t in range(len(full) - 1))),
          outputs["attention"][0].numpy())


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_returns_tokens_with_their_attention_maps(captioner, beam_size):
  decoder = decoding.CaptionDecoder(captioner, VOCAB)
  images = _images(3)
  captions = decoder.beam_search(images, beam_size)
  assert len(captions) == 3
  for image, caption in zip(images, captions):
    length = len(caption.token_ids)
    assert length <= 6 and caption.attention.shape == (length, 4, 4)
    assert not set(caption.token_ids.tolist()) & {0, 1, 2, 3, 4}  # no special token
    np.testing.assert_allclose(caption.attention.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    ended = length < 6
    log_prob, maps = _teacher_forced(captioner, image, caption.token_ids, ended)
    assert caption.log_prob == pytest.approx(log_prob, abs=1e-3)
    np.testing.assert_allclose(caption.attention.reshape(length, -1), maps[:length], atol=1e-5)
  if beam_size == 1:  # greedy: the most likely allowed token at every step
    assert [c.token_ids.tolist() for c in decoder.greedy(images)] == [
        c.token_ids.tolist() for c in captions]


def test_greedy_is_the_stepwise_argmax(captioner):
  image = _images(1)
  caption = decoding.CaptionDecoder(captioner, VOCAB).greedy(image)[0]
  features, keys = captioner.encode(image)
  state = captioner.initial_state(features)
  previous, expected = 2, []
  for _ in range(6):
    logits, state, _, _ = captioner.step(tf.constant([previous]), state, features, keys)
    logits = logits.numpy()[0]
    logits[[0, 1, 2, 4]] = -np.inf
    previous = int(np.argmax(logits))
    if previous == 3:
      break
    expected.append(previous)
  assert caption.token_ids.tolist() == expected


def test_caption_loss_is_sats_objective_per_token():
  vocab, cells = 10, 4
  targets = tf.constant([[5, 6, 3, 0], [7, 3, 0, 0]])  # 3 and 2 real tokens
  logits = tf.zeros([2, 4, vocab])
  attention = tf.fill([2, 4, cells], 1.0 / cells)
  terms = alignment_captioner.caption_terms(logits, attention, tf.fill([2, 4], 0.25), targets,
                                           pad_id=0, attention_reg=2.0)
  values = {name: float(numerator / denominator) for name, (numerator, denominator)
            in terms.items()}
  # Uniform attention: every cell receives T / 4 in all; the penalty is 4 * (1 - T / 4)^2.
  penalties = np.array([cells * (1 - 3 / cells) ** 2, cells * (1 - 2 / cells) ** 2])
  np.testing.assert_allclose(values["attention_penalty"], penalties.mean(), rtol=1e-6)
  np.testing.assert_allclose(values["cross_entropy"], np.log(vocab), rtol=1e-6)
  per_example = (np.array([3, 2]) * np.log(vocab) + 2.0 * penalties) / np.array([3, 2])
  np.testing.assert_allclose(values["caption"], per_example.mean(), rtol=1e-6)
  assert values["gate"] == pytest.approx(0.25)
