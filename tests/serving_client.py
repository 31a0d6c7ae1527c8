r"""Calls an exported SavedModel the way a user's own program would: TensorFlow and
tensorflow-text only, no import of this project (checked, and reported in the output).

  python tests/serving_client.py EXPORT_DIR REQUEST.json [EXPORT_DIR REQUEST.json ...]

prints one JSON line: a list of results, one per (EXPORT_DIR, REQUEST.json) pair, in order.
REQUEST.json: {"images": [paths], "texts": [...], "signatures": [names], "beam_size": k}.
"""

import json
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)


def call(export_dir: str, request_path: str) -> dict:
  """The outputs of the signatures `request_path` names, from the SavedModel at `export_dir`."""
  with open(request_path, encoding="utf-8") as f:
    request = json.load(f)
  loaded = tf.saved_model.load(export_dir)
  images = tf.constant([open(path, "rb").read() for path in request["images"]])
  texts = tf.constant(request.get("texts") or [""] * len(request["images"]))
  arguments = {"embed_image": {"image_bytes": images},
               "score": {"image_bytes": images, "text": texts},
               "classify": {"image_bytes": images, "text": texts},
               "caption": {"image_bytes": images},
               "caption_beam": {"image_bytes": images,
                                "beam_size": tf.constant(request.get("beam_size", 3))}}
  results = {}
  for name in request["signatures"]:
    outputs = loaded.signatures[name](**arguments[name])
    results[name] = {key: (np.char.decode(value.numpy().astype(bytes), "utf-8").tolist()
                           if value.dtype == tf.string else value.numpy().tolist())
                     for key, value in outputs.items()}
  results["signatures"] = sorted(loaded.signatures.keys())
  return results


def main() -> None:
  pairs = sys.argv[1:]
  results = [call(export_dir, request_path)
             for export_dir, request_path in zip(pairs[::2], pairs[1::2])]
  imported_kaleido = any(name.split(".")[0] == "kaleido" for name in sys.modules)
  print(json.dumps([{**result, "imported_kaleido": imported_kaleido} for result in results]))


if __name__ == "__main__":
  main()
