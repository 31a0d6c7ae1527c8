"""The downstream tasks: the autoregressive caption mask and targets, beam search, and fine-tuning
from a pre-training run through to the evaluation model."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.dataloaders import finetuning
from kaleido.evaluation import model as evaluation_model
from kaleido.metrics import retrieval as retrieval_metrics
from kaleido.model import beam_search
from kaleido.model import heads as heads_lib
from kaleido.model import kaleido_bert
from kaleido.records import manifest as manifest_lib
from kaleido.tasks import factory
from kaleido.text import vocab as vocab_lib
from kaleido.training import trainer as trainer_lib
from tests import catalogs


def test_unilm_mask_text_sees_patches_and_its_past_patches_see_only_patches():
  mask = kaleido_bert.unilm_attention_mask(tf.constant([[1, 1, 1, 0]]), np.ones(2)).numpy()[0]
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
  targets, weights = finetuning.caption_targets(ids, mask, "autoregressive")
  np.testing.assert_array_equal(targets.numpy(), [[7, 8, 102, 0, 0]])
  np.testing.assert_array_equal(weights.numpy(), [[1, 1, 1, 0, 0]])
  targets, weights = finetuning.caption_targets(ids, mask, "one_shot")
  np.testing.assert_array_equal(targets.numpy(), [[101, 7, 8, 102, 0]])
  np.testing.assert_array_equal(weights.numpy(), [[0, 1, 1, 1, 0]])
  np.testing.assert_array_equal(finetuning.one_shot_inputs(ids, 101, 103).numpy(),
                                [[101, 103, 103, 103, 103]])


CLS, SEP, PAD = 1, 2, 0


def _table_step(table):
  """A step function whose log-probs depend only on the previous token: table[prev] -> (V,)."""
  log_table = np.log(np.asarray(table, np.float64))

  def step(tokens, position, state):
    return tf.gather(log_table, tokens[:, position - 1]), state
  return step


# Vocabulary: 0 PAD, 1 CLS, 2 SEP, 3 "a", 4 "b". After CLS: a 0.6, b 0.4. After a: SEP 0.3 and
# three-way spread; after b: SEP 0.9. Greedy takes a (0.6), then a twice (0.34 beats SEP's 0.3):
# 0.6 x 0.34 x 0.34 = 0.069; the beam finds b SEP = 0.36.
_TABLE = [[1, 0, 0, 0, 0], [0, 0, 0, 0.6, 0.4], [1, 0, 0, 0, 0],
          [0.01, 0.01, 0.3, 0.34, 0.34], [0.05, 0.0, 0.9, 0.05, 0.0]]


def test_greedy_is_a_beam_of_one_and_beam_search_finds_the_better_caption():
  with np.errstate(divide="ignore"):
    step = _table_step(_TABLE)
    greedy, greedy_score, _ = beam_search.beam_search(step, (), 1, 1, 4, CLS, SEP, PAD,
                                                      length_penalty=0.0)
    beam, beam_score, _ = beam_search.beam_search(step, (), 1, 2, 4, CLS, SEP, PAD,
                                                  length_penalty=0.0)
  assert greedy.numpy()[0, 1] == 3  # greedy commits to "a"
  np.testing.assert_array_equal(beam.numpy()[0], [CLS, 4, SEP, PAD])
  np.testing.assert_allclose([greedy_score[0], beam_score[0]], np.log([0.6 * 0.34 * 0.34, 0.4 * 0.9]))
  assert beam_search.caption_ids(beam.numpy(), CLS, SEP, PAD) == [[4]]


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("tasks")), 12, seed=6,
                                max_seq_length=24)


def _config(data, model_dir, task=config_lib.PRETRAIN, steps=2, init_checkpoint="",
            finetune=config_lib.FinetuneConfig()) -> config_lib.ExperimentConfig:
  manifest = manifest_lib.load(data)
  model = config_lib.KaleidoBertConfig(
      vocab_size=len(vocab_lib.read_vocab(manifest.vocab_file)), hidden_size=32, num_layers=2,
      num_heads=2, intermediate_size=64, max_seq_length=manifest.max_seq_length,
      patch_size=manifest.patch_size, patch_cnn="small", dropout_rate=0.0,
      attention_dropout_rate=0.0)
  labels = manifest_lib.label_names(manifest, task)
  if labels:
    finetune = dataclasses.replace(finetune, num_classes=len(labels))
  return config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=task, finetune=finetune),
      data=config_lib.DataConfig(train_data=data, vocab_file=manifest.vocab_file,
                                 vocab_hash=manifest.vocab_hash,
                                 max_seq_length=manifest.max_seq_length,
                                 patch_size=manifest.patch_size, label_names=labels),
      model=model, init=config_lib.InitConfig(init_checkpoint=init_checkpoint),
      optimizer=config_lib.OptimizerConfig(learning_rate=1e-3, warmup_steps=0),
      training=config_lib.TrainingConfig(model_dir=str(model_dir), train_steps=steps,
                                         batch_size=4)))


def _train(config: config_lib.ExperimentConfig) -> trainer_lib.TrainResult:
  return trainer_lib.Trainer(config, factory.create_task(config)).run()


@pytest.fixture(scope="module", name="pretraining_run")
def fixture_pretraining_run(data, tmp_path_factory):
  """A 2-step pre-training run folder, shared: tests that change it work on a copy."""
  run = tmp_path_factory.mktemp("pre")
  _train(_config(data, run))
  return run


def _variable_values(checkpoint: str, *parts: str) -> list[np.ndarray]:
  """The values of a checkpoint's model variables whose key holds every one of `parts`."""
  reader = tf.train.load_checkpoint(checkpoint)
  keys = sorted(key for key, _ in tf.train.list_variables(checkpoint)
                if key.startswith("model/") and "OPTIMIZER_SLOT" not in key and
                all(part in key for part in parts))
  assert keys, parts
  return [reader.get_tensor(key) for key in keys]


def test_matching_first_steps_train_through_itm_alone_then_every_loss_joins(data, tmp_path):
  """--matching_first_steps=2 with --itm_unmasked (no weight decay, so only gradients move
  weights): in step 2 the encoder layers and the ITM head move while the AMLM and RR heads wait;
  in step 3 their losses join and move them. The matching steps' pass computes ITM alone."""
  config = _config(data, tmp_path, steps=3)
  pretraining = dataclasses.replace(config.task.pretraining, matching_first_steps=2,
                                    itm_unmasked=True)
  config = dataclasses.replace(
      config, task=dataclasses.replace(config.task, pretraining=pretraining),
      optimizer=dataclasses.replace(config.optimizer, weight_decay=0.0),
      training=dataclasses.replace(config.training, checkpoint_every=1))
  task = factory.create_task(config)
  trainer = trainer_lib.Trainer(config, task)
  trainer.run()
  after = {step: str(tmp_path / "checkpoints" / f"ckpt-{step}") for step in (1, 2, 3)}
  moved = lambda step, *parts: not all(np.array_equal(a, b) for a, b in zip(
      _variable_values(after[step - 1], *parts), _variable_values(after[step], *parts)))
  assert not moved(2, "heads/masked_lm/dense") and not moved(2, "heads/rr")
  assert moved(2, "transformer_layers", "kernel") and moved(2, "heads/itm")
  assert moved(3, "heads/masked_lm/dense") and moved(3, "heads/rr")
  assert [task.phase(step) for step in range(3)] == ["matching", "matching", None]
  batch = next(iter(task.dataset(4, seed=1, input_context=None)))
  matching = task.forward(trainer.model, batch, training=False, phase="matching")
  assert set(matching) == {"itm_logits"}
  assert set(task.replica_losses(batch, matching)) == {"itm", "itc", "total"}
  assert set(task.replica_metrics(batch, matching)) == {"itm_accuracy"}
  # ITM on the restored pass: the same logits as the whole pass's.
  every = task.forward(trainer.model, batch, training=False)
  assert {"mlm_logits", "rr_logits"} <= set(every)
  np.testing.assert_allclose(matching["itm_logits"], every["itm_logits"], atol=1e-5)


def test_autoregressive_caption_model_is_causal_in_text_and_patches_ignore_text(data, tmp_path):
  config = _config(data, tmp_path, "caption")
  task = factory.create_task(config)
  model = task.build_model()
  task.prepare_inputs(model)
  batch = next(iter(task.dataset(2, seed=1, input_context=None)))
  inputs_ = task.model_inputs(model, batch)
  base = model(inputs_)["lm_logits"].numpy()
  changed_ids = inputs_["input_word_ids"].numpy().copy()
  changed_ids[:, 5] = (changed_ids[:, 5] + 1) % config.model.vocab_size
  changed = model({**inputs_, "input_word_ids": tf.constant(changed_ids)})["lm_logits"].numpy()
  np.testing.assert_allclose(changed[:, :5], base[:, :5], atol=1e-5)  # the past cannot see 5
  assert np.abs(changed[:, 5] - base[:, 5]).max() > 1e-4  # position 5 sees its own token
  mask = kaleido_bert.unilm_attention_mask(inputs_["input_mask"], np.ones(55))
  encoded = model.backbone({**inputs_, "attention_mask": mask})["sequence_output"].numpy()
  encoded_changed = model.backbone({**inputs_, "input_word_ids": tf.constant(changed_ids),
                                    "attention_mask": mask})["sequence_output"].numpy()
  length = config.model.max_seq_length
  np.testing.assert_allclose(encoded_changed[:, length:], encoded[:, length:],
                             atol=1e-5)  # patches never see the text


def test_finetune_from_pretraining_then_evaluate(data, pretraining_run, tmp_path):
  pre_dir = pretraining_run
  ft_dir = tmp_path / "category"
  config = _config(data, ft_dir, "category", steps=3, init_checkpoint=str(pre_dir))
  pre_checkpoint = tf.train.load_checkpoint(str(pre_dir / "checkpoints"))
  result = _train(config)
  assert set(result.losses) == {"total", "category", "category_accuracy"}
  # Started from the pre-trained weights: before training they equal the pre-training checkpoint.
  fresh = factory.create_task(config)
  model = fresh.build_model()
  fresh.initialize(model)
  positions = model.backbone.encoder.embeddings.position_embeddings.weights[0].numpy()
  stored = [name for name, _ in tf.train.list_variables(str(pre_dir / "checkpoints"))
            if "embeddings/position_embeddings" in name and "OPTIMIZER" not in name]
  assert len(stored) == 1
  np.testing.assert_array_equal(positions, pre_checkpoint.get_tensor(stored[0]))
  # The run's config is saved whole and rebuilds the run.
  assert config_lib.load(str(ft_dir)) == config

  model = evaluation_model.load(str(ft_dir), data, batch_size=8)
  labels, predictions, names = model.classify("category")
  assert len(labels) == len(predictions) == model.num_examples and len(names) >= 2
  with pytest.raises(errors.KaleidoError, match="trained for --task=category"):
    model.retrieval_scorer("itr")
  zero_shot = evaluation_model.load(str(pre_dir), data, batch_size=8)
  scores = zero_shot.retrieval_scorer("itr")(np.array([0, 1]), np.array([[0, 1, 2], [1, 2, 3]]))
  assert scores.shape == (2, 3) and np.all(np.isfinite(scores))
  # The scorer is the ITM logit margin of (text, image) pairs, whichever side is the query; the
  # probability users read is its sigmoid.
  tir = zero_shot.retrieval_scorer("tir")(np.array([1]), np.array([[0]]))
  margin = zero_shot.matched_margin(np.array([1]), np.array([0]))[0]
  np.testing.assert_allclose(tir[0, 0], margin, rtol=1e-5, atol=1e-6)
  probability = zero_shot.matched_probability(np.array([1]), np.array([0]))[0]
  assert probability == pytest.approx(1 / (1 + np.exp(-margin)), rel=1e-6)
  itr = zero_shot.retrieval_scorer("itr")(np.array([0]), np.array([[1]]))
  np.testing.assert_allclose(itr[0, 0], tir[0, 0], rtol=1e-5, atol=1e-6)


def test_evaluation_refuses_data_of_another_vocabulary(data, pretraining_run, tmp_path):
  shutil.copytree(pretraining_run, tmp_path / "pre")
  config = _config(data, tmp_path / "pre")
  config_lib.save(dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                       vocab_hash="0" * 64)))
  with pytest.raises(errors.KaleidoError, match="prepare the data with the checkpoint"):
    evaluation_model.load(str(tmp_path / "pre"), data)
  with pytest.raises(errors.KaleidoError, match="has no run_config.json"):
    evaluation_model.load(str(tmp_path), data)
  with pytest.raises(errors.KaleidoError, match="does not exist"):
    evaluation_model.load(str(tmp_path / "absent"), data)


def test_margins_rank_where_probabilities_saturate():
  logits = tf.constant([[0.0, 25.0], [0.0, 30.0], [0.0, 40.0]])
  probabilities = tf.nn.softmax(logits)[:, 1].numpy()
  assert (probabilities == 1.0).all()  # float32: every candidate would tie
  margins = heads_lib.itm_margin(logits).numpy()
  np.testing.assert_array_equal(margins, [25.0, 30.0, 40.0])
  for positive, rank in ((2, 1), (1, 2), (0, 3)):
    assert retrieval_metrics.positive_ranks(margins[None], positive)[0] == rank


def test_a_1000_times_larger_itm_head_leaves_every_rank_unchanged(data, pretraining_run):
  """A confident model is not scored as failed: scaling the ITM head's weights by 1,000 scales
  every margin by 1,000 (far past where a float32 probability saturates) and moves no rank."""
  model = evaluation_model.load(str(pretraining_run), data, batch_size=16)
  queries, candidates = np.arange(12), np.arange(12)
  scorer = model.retrieval_scorer("itr")
  before_scores = scorer(queries, candidates)
  before = retrieval_metrics.positive_ranks(before_scores, queries)
  itm = model._model.itm  # pylint: disable=protected-access
  for variable in itm.weights:
    variable.assign(variable * 1000.0)
  after_scores = scorer(queries, candidates)
  np.testing.assert_allclose(after_scores, 1000.0 * before_scores, rtol=1e-3, atol=1e-3)
  np.testing.assert_array_equal(retrieval_metrics.positive_ranks(after_scores, queries), before)


def test_caption_mask_hides_left_out_levels():
  visible = np.array([0, 1, 1])
  mask = kaleido_bert.unilm_attention_mask(tf.constant([[1, 1]]), visible).numpy()[0]
  np.testing.assert_array_equal(mask, [[1, 0, 0, 1, 1], [1, 1, 0, 1, 1], [0, 0, 0, 1, 1],
                                       [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]])


def test_a_task_reading_a_left_out_level_is_refused(data, tmp_path):
  config = _config(data, tmp_path)
  only_fine = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                    kaleido_levels=(4, 5)))
  with pytest.raises(config_lib.ConfigError, match="includes rr, which reads level 1"):
    config_lib.validate(only_fine)
  kept = dataclasses.replace(only_fine, task=dataclasses.replace(
      only_fine.task, pretraining=config_lib.PretrainingConfig(
          enabled=("amlm", "itm", "g2cm", "b2cm"))))
  assert config_lib.validate(kept).model.kaleido_levels == (4, 5)


def test_one_shot_captions_are_the_argmax_of_one_forward_pass(data, tmp_path):
  run = tmp_path / "one_shot"
  _train(_config(data, run, "caption", finetune=config_lib.FinetuneConfig(
      caption_mode="one_shot")))
  model = evaluation_model.load(str(run), data, batch_size=8)
  predictions, _ = model.captions()
  ids = model.special_ids
  rows = np.arange(model.num_examples)
  length = model.run.model.max_seq_length
  word_ids = np.full((len(rows), length), ids.mask_id, np.int32)
  word_ids[:, 0] = ids.cls_id
  captioner = model._model  # pylint: disable=protected-access
  sequence = captioner.backbone({
      "input_word_ids": word_ids, "input_mask": np.ones_like(word_ids),
      "patch_boxes": model._examples.patch_boxes[rows],  # pylint: disable=protected-access
      "patch_features": model.patch_features(rows)}, training=False)["sequence_output"]
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), word_ids.shape)
  logits = captioner.masked_lm(sequence, masked_positions=tf.constant(positions)).numpy()
  tokens = np.argmax(logits, -1)
  expected = []
  for row in tokens:
    caption = []
    for token in row[1:]:
      if token == ids.sep_id:
        break
      if token not in (ids.pad_id, ids.cls_id):
        caption.append(int(token))
    expected.append(model.tokenizer.decode(caption))
  image_ids = model._examples.image_ids  # pylint: disable=protected-access
  assert [predictions[image_ids[row]] for row in rows] == expected
  assert len(set(expected)) >= 1 and all(isinstance(c, str) for c in expected)
