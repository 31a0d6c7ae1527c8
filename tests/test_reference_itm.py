"""tools/reference_itm.py (issue #34's reference outside kaleido/model): its own Hugging Face
mapping into Model Garden's BertEncoderV2 gives a NumPy BERT's text states, its negatives are
never the query's product, and a few steps move the checkpoint's layers."""

from __future__ import annotations

import numpy as np
import pytest

from tests import test_bert_init
from tests import tool_modules

reference_itm = tool_modules.load("reference_itm")

FEATURE_SIZE = 6
MAX_POSITIONS = 64


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
  """A tiny BERT with room for 8 text positions and the 55 patches."""
  weights = tiny_weights()
  config = {**test_bert_init.TINY, "max_position_embeddings": MAX_POSITIONS}
  return (test_bert_init.write_hf_dir(str(tmp_path_factory.mktemp("hf")), weights, config),
          weights)


def tiny_weights() -> dict[str, np.ndarray]:
  weights = test_bert_init.tiny_hf_weights(seed=4)
  hidden = test_bert_init.TINY["hidden_size"]
  weights["bert.embeddings.position_embeddings.weight"] = np.random.default_rng(5).normal(
      0, 0.3, (MAX_POSITIONS, hidden)).astype(np.float32)
  return weights


def test_text_states_equal_a_numpy_bert(tiny_bert):
  directory, weights = tiny_bert
  encoder, _, _ = reference_itm.build_reference(directory, FEATURE_SIZE, seed=0)
  ids, mask = test_bert_init.random_text(3, 10, test_bert_init.TINY["vocab_size"], seed=2)
  ids = ids.astype(np.int32)
  patches = np.random.default_rng(0).normal(size=(3, 4, 16)).astype(np.float32)
  outputs = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": 0 * ids,
                     "dense_inputs": patches, "dense_mask": np.zeros((3, 4), np.int32),
                     "dense_type_ids": np.ones((3, 4), np.int32)}, training=False)
  expected = test_bert_init.numpy_bert(weights, ids, mask, num_heads=2, exact_gelu=True)
  difference = test_bert_init.max_text_difference(
      outputs["sequence_output"].numpy()[:, :10], expected, mask)
  assert difference < 1e-4


def test_a_missing_weight_is_named(tiny_bert):
  directory, weights = tiny_bert
  encoder, _, _ = reference_itm.build_reference(directory, FEATURE_SIZE, seed=0)
  partial = dict(weights)
  partial.pop("bert.encoder.layer.1.output.dense.bias")
  with pytest.raises(KeyError, match="encoder.layer.1.output.dense.bias"):
    reference_itm.load_huggingface_bert(encoder, partial)


def test_negatives_are_other_products_and_groups_put_the_positive_first():
  product_ids = np.array(["a", "a", "b", "c", "d", "d"])
  data = {"product_ids": product_ids}
  rows = np.array([0, 1, 2, 3, 4, 5])
  rng = np.random.default_rng(0)
  texts, images, counts = reference_itm.training_rows(data, rows, rng, "groups", 2)
  assert list(counts) == [3] * 12
  texts, images = texts.reshape(12, 3), images.reshape(12, 3)
  # Text queries: one text, its own image first; image queries: one image, its own text first.
  np.testing.assert_array_equal(texts[:6], np.repeat(rows[:, None], 3, axis=1))
  np.testing.assert_array_equal(images[:6, 0], rows)
  np.testing.assert_array_equal(images[6:], np.repeat(rows[:, None], 3, axis=1))
  for own, candidates in [(images[:6, 0], images[:6, 1:]), (texts[6:, 0], texts[6:, 1:])]:
    assert (product_ids[candidates] != product_ids[own][:, None]).all()
  texts, images, labels = reference_itm.training_rows(data, rows, rng, "pairs", 1)
  np.testing.assert_array_equal(texts, rows)
  assert ((images == rows) == (labels == 1)).all()
  assert (product_ids[images[labels == 0]] != product_ids[rows[labels == 0]]).all()


def test_training_moves_the_checkpoints_layers(tiny_bert):
  directory, weights = tiny_bert
  vocab = test_bert_init.TINY["vocab_size"]

  def folder(seed: int, num: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"word_ids": rng.integers(5, vocab, (num, 8)).astype(np.int32),
            "input_mask": np.ones((num, 8), np.int32),
            "features": rng.normal(size=(num, 55, FEATURE_SIZE)).astype(np.float32),
            "boxes": rng.random((num, 55, 5)).astype(np.float32),
            "product_ids": np.array([f"p{i}" for i in range(num)])}

  settings = {"negatives": "groups", "group_size": 2, "steps": 3, "batch_size": 4,
              "learning_rate": 1e-2, "pretrained_lr_multiplier": 0.1, "warmup_steps": 1,
              "eval_every": 2, "seed": 0}
  model = reference_itm.build_reference(directory, FEATURE_SIZE, seed=0)
  written = []
  curve = reference_itm.train(model, folder(2), folder(3), settings, log=lambda _: None,
                              on_point=lambda so_far: written.append(len(so_far)))
  assert [point["step"] for point in curve] == [0, 2, 3]
  assert written == [1, 2, 3]
  assert all(0.0 <= point["auc"] <= 1.0 for point in curve)
  assert np.isfinite(curve[-1]["train_loss"])
  query = model[0].transformer_layers[0]._attention_layer._query_dense.kernel.numpy()  # pylint: disable=protected-access
  start = weights["bert.encoder.layer.0.attention.self.query.weight"].T.reshape(query.shape)
  assert np.abs(query - start).max() > 1e-6
