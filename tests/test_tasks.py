"""The downstream tasks: the autoregressive caption mask and targets, beam search, and fine-tuning
from a pre-training run through to the evaluation model."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.pretraining import inputs
from kaleido.records import manifest as manifest_lib
from kaleido.tasks import caption_decoding
from kaleido.tasks import captioning
from kaleido.tasks import evaluation_model
from kaleido.tasks import factory
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.training import run_config as run_config_lib
from kaleido.training import trainer as trainer_lib
from tests import catalogs


def test_unilm_mask_text_sees_patches_and_its_past_patches_see_only_patches():
  mask = captioning.unilm_attention_mask(tf.constant([[1, 1, 1, 0]]), num_patches=2).numpy()[0]
  expected = np.array([
      # text 0..3       patches
      [1, 0, 0, 0, 1, 1],
      [1, 1, 0, 0, 1, 1],
      [1, 1, 1, 0, 1, 1],
      [1, 1, 1, 0, 1, 1],  # a padding row sees the real text only
      [0, 0, 0, 0, 1, 1],
      [0, 0, 0, 0, 1, 1]])
  np.testing.assert_array_equal(mask, expected)


def test_caption_targets_per_mode():
  ids = tf.constant([[101, 7, 8, 102, 0]])
  mask = tf.constant([[1, 1, 1, 1, 0]])
  targets, weights = captioning.caption_targets(ids, mask, captioning.AUTOREGRESSIVE)
  np.testing.assert_array_equal(targets.numpy(), [[7, 8, 102, 0, 0]])
  np.testing.assert_array_equal(weights.numpy(), [[1, 1, 1, 0, 0]])
  targets, weights = captioning.caption_targets(ids, mask, captioning.ONE_SHOT)
  np.testing.assert_array_equal(targets.numpy(), [[101, 7, 8, 102, 0]])
  np.testing.assert_array_equal(weights.numpy(), [[0, 1, 1, 1, 0]])
  np.testing.assert_array_equal(captioning.one_shot_inputs(ids, 101, 103).numpy(),
                                [[101, 103, 103, 103, 103]])


CLS, SEP, PAD = 1, 2, 0


def _table_step(table):
  """A step function whose log-probs depend only on the previous token: table[prev] -> (V,)."""
  log_table = np.log(np.asarray(table, np.float64))

  def step(tokens, position, rows):
    del rows
    return log_table[tokens[:, position - 1]]
  return step


# Vocabulary: 0 PAD, 1 CLS, 2 SEP, 3 "a", 4 "b". After CLS: a 0.6, b 0.4. After a: SEP 0.3 and
# three-way spread; after b: SEP 0.9. Greedy takes a (0.6) then SEP (0.3) = 0.18; the beam finds
# b SEP = 0.36.
_TABLE = [[1, 0, 0, 0, 0], [0, 0, 0, 0.6, 0.4], [1, 0, 0, 0, 0],
          [0.01, 0.01, 0.3, 0.34, 0.34], [0.05, 0.0, 0.9, 0.05, 0.0]]


def test_greedy_is_a_beam_of_one_and_beam_search_finds_the_better_caption():
  with np.errstate(divide="ignore"):
    step = _table_step(_TABLE)
    greedy = caption_decoding.beam_search(step, 1, 4, CLS, SEP, PAD, beam_size=1,
                                          length_penalty=0.0)
    beam = caption_decoding.beam_search(step, 1, 4, CLS, SEP, PAD, beam_size=2,
                                        length_penalty=0.0)
  assert greedy[0, 1] == 3  # greedy commits to "a"
  np.testing.assert_array_equal(beam[0], [CLS, 4, SEP, PAD])
  assert caption_decoding.caption_ids(beam, CLS, SEP, PAD) == [[4]]


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("tasks")), 12, seed=6,
                                max_seq_length=24)


def _config(data, model_dir, finetune=None, steps=2):
  manifest = manifest_lib.load(data)
  tokenizer = tokenizer_lib.KaleidoTokenizer(manifest.vocab_file, manifest.max_seq_length)
  model = config_lib.ModelConfig(
      vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2, num_heads=2,
      intermediate_size=64, max_seq_length=manifest.max_seq_length,
      patch_size=manifest.patch_size, backbone="small", dropout_rate=0.0,
      attention_dropout_rate=0.0)
  config = config_lib.KaleidoConfig(
      model=model, task=config_lib.TaskConfig(),
      train=config_lib.TrainConfig(model_dir=str(model_dir), train_data=data, train_steps=steps,
                                   batch_size=4, warmup_steps=0, learning_rate=1e-3),
      finetune=finetune)
  labels = ()
  if finetune and finetune.task == "category":
    labels = tuple(sorted(manifest.categories, key=manifest.categories.get))
  record = run_config_lib.RunConfig(config.task_name, model, finetune, manifest.vocab_file,
                                    manifest.vocab_hash, labels)
  return config, inputs.special_ids(tokenizer), record


def test_autoregressive_caption_model_is_causal_in_text_and_patches_ignore_text(data, tmp_path):
  finetune = config_lib.FinetuneConfig(task="caption")
  config, special_ids, _ = _config(data, tmp_path, finetune)
  task = factory.create_task(config, special_ids)
  model = task.build_model()
  batch = next(iter(task.dataset(2, seed=1, input_context=None)))
  inputs_ = {key: batch[key] for key in model.input}
  base = model(inputs_)["lm_logits"].numpy()
  changed_ids = inputs_["input_word_ids"].numpy().copy()
  changed_ids[:, 5] = (changed_ids[:, 5] + 1) % config.model.vocab_size
  changed = model({**inputs_, "input_word_ids": tf.constant(changed_ids)})["lm_logits"].numpy()
  np.testing.assert_allclose(changed[:, :5], base[:, :5], atol=1e-5)  # the past cannot see 5
  assert np.abs(changed[:, 5] - base[:, 5]).max() > 1e-4  # position 5 sees its own token
  encoded = task.encode(inputs_, task.parts, captioning.unilm_attention_mask(
      inputs_["input_mask"], config.model.num_patches))["sequence_output"].numpy()
  encoded_changed = task.encode({**inputs_, "input_word_ids": tf.constant(changed_ids)},
                                task.parts, captioning.unilm_attention_mask(
                                    inputs_["input_mask"], config.model.num_patches))
  length = config.model.max_seq_length
  np.testing.assert_allclose(encoded_changed["sequence_output"].numpy()[:, length:],
                             encoded[:, length:], atol=1e-5)  # patches never see the text


def test_finetune_from_pretraining_then_evaluate(data, tmp_path):
  pre_dir = tmp_path / "pre"
  config, special_ids, record = _config(data, pre_dir)
  trainer_lib.Trainer(config, special_ids, run_record=record).run()
  finetune = config_lib.FinetuneConfig(task="category", init_checkpoint=str(pre_dir),
                                       num_classes=len(manifest_lib.load(data).categories))
  ft_dir = tmp_path / "category"
  config, special_ids, record = _config(data, ft_dir, finetune, steps=3)
  trainer = trainer_lib.Trainer(config, special_ids, run_record=record)
  pre_checkpoint = tf.train.load_checkpoint(str(pre_dir / "checkpoints"))
  result = trainer.run()
  assert set(result.losses) == {"total", "category", "category_accuracy"}
  # Started from the pre-trained weights: before training they equal the pre-training checkpoint.
  fresh = factory.create_task(config, special_ids)
  fresh.initialize(fresh.build_model())
  positions = fresh.parts.encoder.embeddings.position_embeddings.weights[0].numpy()
  stored = [name for name, _ in tf.train.list_variables(str(pre_dir / "checkpoints"))
            if "embeddings/position_embeddings" in name and "OPTIMIZER" not in name]
  assert len(stored) == 1
  np.testing.assert_array_equal(positions, pre_checkpoint.get_tensor(stored[0]))

  model = evaluation_model.load(str(ft_dir), data, batch_size=8)
  labels, predictions, names = model.classify("category")
  assert len(labels) == len(predictions) == model.num_examples and len(names) >= 2
  with pytest.raises(errors.KaleidoError, match="trained for --task=category"):
    model.retrieval_scorer("itr")
  zero_shot = evaluation_model.load(str(pre_dir), data, batch_size=8)
  scores = zero_shot.retrieval_scorer("itr")(np.array([0, 1]), np.array([[0, 1, 2], [1, 2, 3]]))
  assert scores.shape == (2, 3) and np.all((scores > 0) & (scores < 1))
  # The scorer is the matched probability of (text, image) pairs, whichever side is the query.
  tir = zero_shot.retrieval_scorer("tir")(np.array([1]), np.array([[0]]))
  np.testing.assert_allclose(tir[0, 0], zero_shot.matched_probability(np.array([1]),
                                                                      np.array([0]))[0],
                             rtol=1e-5)
  itr = zero_shot.retrieval_scorer("itr")(np.array([0]), np.array([[1]]))
  np.testing.assert_allclose(itr[0, 0], tir[0, 0], rtol=1e-5)


def test_evaluation_refuses_data_of_another_vocabulary(data, tmp_path):
  config, special_ids, record = _config(data, tmp_path / "pre")
  trainer_lib.Trainer(config, special_ids, run_record=record).run()
  run_config_lib.save(str(tmp_path / "pre"), dataclasses.replace(record, vocab_hash="0" * 64))
  with pytest.raises(errors.KaleidoError, match="prepare the evaluation data with the checkpoint"):
    evaluation_model.load(str(tmp_path / "pre"), data)
  with pytest.raises(errors.KaleidoError, match="has no run_config.json"):
    evaluation_model.load(str(tmp_path), data)
