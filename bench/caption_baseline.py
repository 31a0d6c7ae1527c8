r"""The caption-the-majority-text baseline of issue #5 (a benchmark, not a test).

  python bench/caption_baseline.py --train_data=workdir/demo/prepared/train \
      --eval_data=workdir/demo/prepared/validation --output=runs/demo_eval/majority.jsonl
  python evaluate.py --task=caption --predictions=runs/demo_eval/majority.jsonl

Captions every evaluation image with the most frequent text of the training split (the first of
the most frequent on ties), written as the JSON lines `evaluate.py --predictions` scores.
"""

import collections
import os

from absl import app
from absl import flags

_TRAIN_DATA = flags.DEFINE_string("train_data", "workdir/demo/prepared/train", "Training folder.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "workdir/demo/prepared/validation",
                                 "Evaluation folder.")
_OUTPUT = flags.DEFINE_string("output", "runs/demo_eval/majority.jsonl", "Predictions JSONL.")


def _texts(folder: str) -> list[tuple[str, str]]:
  """(image id, text) of every example of a prepared folder, in file order."""
  from kaleido.records import reader  # pylint: disable=g-import-not-at-top
  return [(example["image_id"].numpy().decode("utf-8"), example["text"].numpy().decode("utf-8"))
          for example in reader.make_dataset(folder)]


def main(argv):
  del argv
  from kaleido.evaluation import captioning  # pylint: disable=g-import-not-at-top
  counts = collections.Counter(text for _, text in _texts(_TRAIN_DATA.value))
  majority = counts.most_common(1)[0][0]
  examples = _texts(_EVAL_DATA.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  captioning.write_predictions(_OUTPUT.value, {image_id: majority for image_id, _ in examples},
                               {image_id: [text] for image_id, text in examples})
  print(f"Majority training text ({counts[majority]} of {sum(counts.values())} images): "
        f"{majority!r}\nWrote {len(examples)} captions to {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
