"""Reads any supported BERT checkpoint into a `BertCheckpoint`, telling the format apart.

Accepted paths: a converted directory (tools/convert_checkpoint.py), a Hugging Face directory
(config.json + model.safetensors), a directory with a TensorFlow checkpoint
(Google's bert_model.ckpt + bert_config.json, or a Model Garden encoder checkpoint), or the prefix
of such a TensorFlow checkpoint. Each directory may hold the vocab.txt that travels with it.
"""

from __future__ import annotations

import os

from kaleido import errors
from kaleido.pretrained import bert_checkpoint
from kaleido.pretrained import converted
from kaleido.pretrained import huggingface
from kaleido.pretrained import tf_bert


def read_bert_checkpoint(path: str) -> bert_checkpoint.BertCheckpoint:
  """The BERT checkpoint at `path`; a one-sentence KaleidoError when it cannot be read."""
  if os.path.isfile(path + ".index"):
    return tf_bert.read(path)
  if not os.path.isdir(path):
    raise errors.KaleidoError(
        f"BERT checkpoint {path!r} is not a directory or a TensorFlow checkpoint prefix" +
        ("; pass the directory holding the file." if os.path.isfile(path) else " that exists."))
  if converted.is_converted(path):
    return converted.read(path)
  if os.path.isfile(os.path.join(path, huggingface.CONFIG_FILE)):
    return huggingface.read(path)
  prefix = tf_bert.checkpoint_prefix(path)
  if prefix:
    return tf_bert.read(prefix)
  raise errors.KaleidoError(
      f"{path!r} is not a BERT checkpoint directory: it has no {huggingface.CONFIG_FILE} "
      f"(Hugging Face or converted) and no TensorFlow checkpoint "
      f"({tf_bert.GOOGLE_PREFIX}.index with {tf_bert.CONFIG_FILE}).")
