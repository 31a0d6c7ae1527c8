r"""Does a pre-training run use the image, and does its ITM head tell matched pairs apart?

  python tools/probe_cross_modal.py --model_dir runs/demo_pretrain

Two held-out probes of a pre-training checkpoint (on its --eval_data, the development split for
the demo runs), for a start whose ITM stays at chance:
- masked-LM accuracy on the words of --words (default: the demo's colour names, which only the
  image can tell) and on every other masked token, under the run's own masks, once with each
  matched example's own image and once with the next matched example's (texts unchanged): a
  drop means the encoder reads the image where a word needs it;
- the ITM logit margins of --pairs examples' texts (unmasked) with their own image and with
  another product's: their AUC (0.5: no separation) and spread (a collapsed head has almost
  none);
- on the matched pairs, the attention mass the [CLS] query and the text queries put on the
  patches in each layer, beside an even spread's: a text side that does not look at the image
  cannot tell whether the image fits it;
- on the same pairs, whether the joint pass's last states tell matched from mismatched at all:
  a ridge classifier per state (pooled output, [CLS], mean of text states, mean of patch
  states), fitted on the pairs of half of the products and scored (AUC) on the other half's.
  High AUC with a collapsed ITM head: the encoder computes the match, the head does not learn
  to read it; AUC near 0.5: the encoder does not compute it.
"""

from absl import app
from absl import flags

from kaleido.metrics import classification
from kaleido.utils import cli

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A pre-training --model_dir of train.py.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "", "A prepared folder (default: the run's "
                                 "--eval_data).")
_BATCHES = flags.DEFINE_integer("batches", 12, "Masked-LM probe: batches of 32.")
_PAIRS = flags.DEFINE_integer("pairs", 400, "ITM probe: examples, each with its own text and "
                              "another product's.")
_WORDS = flags.DEFINE_list("words", [], "Masked-LM probe: the words only the image can tell "
                           "(default: the demo's colour names).")


def _masked_lm_probe(run, checkpoint: str, words: set[str]) -> dict[str, tuple[int, int]]:
  """{"<words|other>_<own|swapped>": (correct, count)} over the probe's masked tokens."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  from kaleido.utils import restoring  # pylint: disable=g-import-not-at-top
  task = factory.create_task(run)
  model = task.build_model()
  restoring.restore(checkpoint, {"model": model}, "pass a pre-training run of this project")
  word_ids = {i for i, token in enumerate(vocab_lib.read_vocab(run.data.vocab_file))
              if token in words}
  counts = {f"{kind}_{image}": [0, 0] for kind in ("words", "other")
            for image in ("own", "swapped")}
  for batch in task.dataset(32, 0, None, training=False).take(_BATCHES.value):
    matched = np.flatnonzero(batch["itm_label"].numpy() == 1)
    rows = np.arange(len(batch["itm_label"]))
    rows[matched] = np.roll(matched, 1)
    inputs = {key: batch[key] for key in model.input_keys}
    swapped = {**inputs, **{key: tf.gather(inputs[key], rows)
                            for key in ("patches", "patch_boxes")}}
    targets, weights = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
    for image, features in (("own", inputs), ("swapped", swapped)):
      predicted = model(features, training=False)["mlm_logits"].numpy().argmax(-1)
      for row in matched:
        for k in np.flatnonzero(weights[row] > 0):
          kind = "words" if targets[row, k] in word_ids else "other"
          counts[f"{kind}_{image}"][0] += int(predicted[row, k] == targets[row, k])
          counts[f"{kind}_{image}"][1] += 1
  return {key: tuple(value) for key, value in counts.items()}


def _ridge_auc(own, other, train_rows, test_rows, penalty: float = 1.0) -> float:
  """Held-out AUC of a ridge classifier (+1 own, -1 other) fitted on `train_rows`' pairs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  features = np.concatenate([own[train_rows], other[train_rows]]).astype(np.float64)
  mean, scale = features.mean(0), features.std(0) + 1e-6
  x = (features - mean) / scale
  y = np.concatenate([np.ones(len(train_rows)), -np.ones(len(train_rows))])
  w = np.linalg.solve(x.T @ x + penalty * len(x) * np.eye(x.shape[1]), x.T @ y)
  score = lambda states: ((states[test_rows] - mean) / scale) @ w
  return classification.pairwise_auc(score(own), score(other))


def _itm_probes(model_dir: str, eval_data: str
                ) -> tuple[float, float, int, dict[str, float], dict[str, object]]:
  """(AUC of own-image over other-image margins, std of all margins, examples, {joint state:
  held-out AUC of a linear classifier of matched vs mismatched on it}, the attention the texts
  give their own images per layer: EvaluationModel.attention_to_patches)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import model as evaluation_model  # pylint: disable=g-import-not-at-top
  model = evaluation_model.load(model_dir, eval_data, 64, retrieval_text="description")
  count = min(model.num_examples, _PAIRS.value)
  rows = np.arange(count)
  rng = np.random.default_rng(0)
  products = model.product_ids[:count]
  # The linear probe is fitted on half of the products and scored on the other half; each
  # text's other image comes from its own half, so no image is seen on both sides.
  fitted = set(rng.permutation(np.unique(products))[:len(np.unique(products)) // 2])
  in_fitted = np.array([product in fitted for product in products])
  others = np.array([rng.choice(np.flatnonzero((products != products[i]) &
                                               (in_fitted == in_fitted[i]))) for i in rows])
  own, other = model.matched_margin(rows, rows), model.matched_margin(rows, others)
  own_states, other_states = model.joint_states(rows, rows), model.joint_states(rows, others)
  train_rows, test_rows = np.flatnonzero(in_fitted), np.flatnonzero(~in_fitted)
  linear = {name: _ridge_auc(own_states[name], other_states[name], train_rows, test_rows)
            for name in own_states}
  return (classification.pairwise_auc(own, other), float(np.std(np.concatenate([own, other]))),
          count, linear,
          model.attention_to_patches(rows, rows))


@cli.user_errors_as_messages
def main(argv):
  del argv
  import dataclasses  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido import errors  # pylint: disable=g-import-not-at-top
  from kaleido.demo import garments  # pylint: disable=g-import-not-at-top
  from kaleido.utils import restoring  # pylint: disable=g-import-not-at-top
  run = config_lib.load_pretraining_run(_MODEL_DIR.value, "model_dir")
  eval_data = _EVAL_DATA.value or run.data.eval_data
  if not eval_data:
    raise errors.KaleidoError("The run has no --eval_data; pass --eval_data=PREPARED_FOLDER.")
  run = dataclasses.replace(run, data=dataclasses.replace(run.data, eval_data=eval_data))
  words = set(_WORDS.value or garments.COLOURS)
  counts = _masked_lm_probe(run, restoring.latest_checkpoint(_MODEL_DIR.value), words)
  share = lambda key: f"{counts[key][0] / max(counts[key][1], 1):.1%} ({counts[key][1]})"
  print(f"masked LM, --words tokens: {share('words_own')} with the own image, "
        f"{share('words_swapped')} with another product's")
  print(f"masked LM, other tokens:   {share('other_own')} / {share('other_swapped')}")
  auc, spread, count, linear, attention = _itm_probes(_MODEL_DIR.value, eval_data)
  print(f"ITM margins, {count} texts with their own image vs another product's: AUC {auc:.3f}, "
        f"spread (std) {spread:.3f}")
  print("linear probe of matched vs mismatched, held-out products' AUC: " +
        ", ".join(f"{name} {value:.3f}" for name, value in linear.items()))
  layers = lambda name: " ".join(f"{value:.3f}" for value in attention[name])
  print(f"attention mass on the patches, layers 1..{len(attention['cls'])}: [CLS] query "
        f"{layers('cls')}; text queries {layers('text')} (an even spread: "
        f"{attention['uniform'][0]:.3f})")


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
