"""Hugging Face BERT directories: config.json, model.safetensors, vocab.txt.

Weight names are those of transformers' BertModel / BertForPreTraining, with or without the
`bert.` prefix (sentence-transformers models have none and no MLM head); old files name LayerNorm
parameters gamma/beta instead of weight/bias. PyTorch Linear weights are (out, in) and are
transposed. model.safetensors is read with numpy only; pytorch_model.bin (a pickle, which can run
code when read) is not read: Hugging Face publishes model.safetensors for BERT models, and
transformers converts any model with save_pretrained(DIR, safe_serialization=True).
"""

from __future__ import annotations

import os

import numpy as np
from safetensors import numpy as safetensors_numpy

from kaleido import errors
from kaleido.pretrained import bert_checkpoint as canonical

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
PYTORCH_FILE = "pytorch_model.bin"
# transformers' names of GELU: "gelu" is the exact erf form, the others the tanh approximation.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate",
               "gelu_pytorch_tanh": "gelu_approximate", "gelu_fast": "gelu_approximate"}


def canonical_name(name: str) -> tuple[str, bool]:
  """A transformers weight name -> (canonical name, whether to transpose the value).

  Names without a canonical counterpart (position_ids, the NSP head, the tied decoder) come out
  as names `make_checkpoint` drops.
  """
  name = name.removeprefix("bert.")
  if name == "cls.predictions.bias":
    return canonical.MLM_OUTPUT_BIAS, False
  *path, leaf = name.replace("encoder.layer.", "encoder.layer_").split(".")
  parent = path[-1] if path else ""
  transpose = False
  if parent.endswith("_embeddings") and leaf == "weight":
    path, leaf = path[:-1], parent
  elif parent == "LayerNorm":
    leaf = {"weight": "gamma", "bias": "beta"}.get(leaf, leaf)
  elif leaf == "weight":
    leaf, transpose = "kernel", True
  root = [] if path[:1] == ["cls"] else ["bert"]
  return "/".join(root + path + [leaf]), transpose


def _load_weights(directory: str) -> dict[str, np.ndarray]:
  safetensors_path = os.path.join(directory, SAFETENSORS_FILE)
  if os.path.isfile(safetensors_path):
    return safetensors_numpy.load_file(safetensors_path)
  if os.path.isfile(os.path.join(directory, PYTORCH_FILE)):
    raise errors.KaleidoError(
        f"{directory!r} holds {PYTORCH_FILE}, a pickle this project does not read (unpickling "
        f"can run code); download the model's {SAFETENSORS_FILE} instead (Hugging Face "
        "publishes it for bert-base-uncased) or convert it where transformers is installed with "
        "model.save_pretrained(DIR, safe_serialization=True).")
  raise errors.KaleidoError(f"Hugging Face directory {directory!r} has no {SAFETENSORS_FILE}; "
                            "pass a folder with config.json, model.safetensors and vocab.txt.")


def read(directory: str) -> canonical.BertCheckpoint:
  """The BERT checkpoint in a Hugging Face model directory."""
  config_path = os.path.join(directory, CONFIG_FILE)
  config = canonical.read_json_file(config_path)
  model_type = config.get("model_type", "bert")
  if model_type != "bert":
    raise errors.KaleidoError(f"{config_path!r} describes a {model_type!r} model; only BERT "
                              "models (model_type bert) can initialise Kaleido-BERT.")
  sizes = canonical.sizes_from_config(config, ACTIVATIONS, config_path)
  weights = {}
  for name, value in _load_weights(directory).items():
    target, transpose = canonical_name(name)
    weights[target] = value.T if transpose else value
  return canonical.make_checkpoint(sizes, weights, canonical.vocab_file_in(directory),
                                   f"Hugging Face BERT {directory!r}")
