"""The exported SavedModel, called from raw image bytes and text in a process that imports only
TensorFlow and tensorflow-text, gives what evaluate.py's model gives on the prepared data."""

import json
import os
import shutil
import subprocess
import sys
import unicodedata

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kaleido import errors
from kaleido.data import catalogs as catalog_files
from kaleido.evaluation import model as evaluation_model
from kaleido.serving import export
from kaleido.serving import preprocessing
from kaleido.tasks import factory
from kaleido.training import trainer
from kaleido.utils import text_validity
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_IMAGES = 6
INVISIBLE_TEXT = "\u200b \u3000"  # a zero-width space, a space and an ideographic space


@pytest.fixture(scope="module", name="setup")
def fixture_setup(tmp_path_factory):
  """A prepared demo, PNG files of its first catalog images, and a folder for the runs."""
  base = tmp_path_factory.mktemp("serving")
  data = catalogs.prepared_demo(str(base / "data"), 8, seed=6)
  catalog = catalog_files.open_catalog(str(base / "data" / "demo.h5"))
  images = []
  for row in catalog.read(0, NUM_IMAGES):
    path = str(base / f"image{row.index}.png")
    cv2.imwrite(path, cv2.cvtColor(row.image, cv2.COLOR_RGB2BGR))
    images.append(path)
  return base, data, images


def _trained_and_exported(base, data, task: str) -> str:
  """Trains a tiny `task` run for 2 steps, exports it to base/exports/task; the run folder."""
  config = catalogs.tiny_experiment(data, str(base / task), task=task, train_steps=2)
  trainer.Trainer(config, factory.create_task(config)).run()
  export.export(str(base / task), str(base / "exports" / task))
  return str(base / task)


@pytest.fixture(scope="module", name="served")
def fixture_served(setup):
  """{task: (its evaluation model, the outputs of its SavedModel)}: three tiny runs, each
  exported, all called from one client process (one TensorFlow start instead of three)."""
  base, data, images = setup
  references = {task: evaluation_model.load(_trained_and_exported(base, data, task), data)
                for task in ("retrieval", "caption", "category")}
  texts = {task: reference._examples.texts  # pylint: disable=protected-access
           for task, reference in references.items()}
  rows = np.arange(NUM_IMAGES)
  requests = {
      "retrieval": {"images": images, "texts": [texts["retrieval"][i] for i in np.roll(rows, 1)
                                                 ][:-1] + [INVISIBLE_TEXT],
                    "signatures": ["score", "embed_image"]},
      "caption": {"images": images, "signatures": ["caption", "caption_beam"], "beam_size": 3},
      "category": {"images": images, "texts": list(texts["category"][:NUM_IMAGES]),
                   "signatures": ["classify"]}}
  arguments = []
  for task, request in requests.items():
    path = base / f"request_{task}.json"
    path.write_text(json.dumps(request))
    arguments += [str(base / "exports" / task), str(path)]
  result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "serving_client.py"),
                           *arguments], capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  outputs = json.loads(result.stdout.strip().splitlines()[-1])
  assert not any(output["imported_kaleido"] for output in outputs)
  return {task: (references[task], output) for task, output in zip(requests, outputs)}


def test_score_and_embed_image_equal_the_evaluation_model(served):
  reference, outputs = served["retrieval"]
  rows = np.arange(NUM_IMAGES)
  assert outputs["signatures"] == ["embed_image", "score"]
  margins = reference.matched_margin(np.roll(rows, 1), rows)[:-1]
  served_margins = outputs["score"]["itm_logit_margin"]
  np.testing.assert_allclose(served_margins[:-1], margins, atol=1e-3)
  np.testing.assert_allclose(outputs["score"]["matched_probability"][:-1],
                             reference.matched_probability(np.roll(rows, 1), rows)[:-1], atol=1e-3)
  assert np.argsort(served_margins[:-1]).tolist() == np.argsort(margins).tolist()
  # The last text shows no character: flagged, and it matches nothing.
  assert outputs["score"]["empty_text"] == [False] * (NUM_IMAGES - 1) + [True]
  assert served_margins[-1] == -np.inf and outputs["score"]["matched_probability"][-1] == 0
  # Evaluation keeps the features as float16 (11 significant bits), and crops larger than the
  # 5 x 16-pixel L5 grid are shrunk by TensorFlow's area resampling instead of OpenCV's, which
  # moves a few pixels by a level or two.
  np.testing.assert_allclose(np.asarray(outputs["embed_image"]["patch_features"]),
                             reference.patch_features(rows), rtol=2e-3, atol=2e-2)
  np.testing.assert_allclose(np.asarray(outputs["embed_image"]["patch_boxes"]),
                             reference._examples.patch_boxes[rows], atol=1e-6)  # pylint: disable=protected-access


def test_caption_equals_the_evaluation_models_greedy_and_beam_captions(served):
  reference, outputs = served["caption"]
  image_ids = reference._examples.image_ids[:NUM_IMAGES]  # pylint: disable=protected-access
  for signature, beam_size in (("caption", 1), ("caption_beam", 3)):
    expected, _ = reference.captions(beam_size)
    assert outputs[signature]["caption"] == [expected[i] for i in image_ids], signature


def test_classify_equals_the_evaluation_models_probabilities(served):
  reference, outputs = served["category"]
  expected = reference.class_probabilities("category")[:NUM_IMAGES]
  np.testing.assert_allclose(outputs["classify"]["probabilities"], expected, atol=1e-3)
  assert outputs["classify"]["top_class"] == np.argmax(expected, axis=-1).tolist()
  names = reference.run.data.label_names
  assert outputs["classify"]["top_class_name"] == [names[i] for i in outputs["classify"]["top_class"]]


def test_the_graphs_empty_text_rule_is_text_validitys():
  # Every character assigned in Python's Unicode version alone, then texts of several.
  characters = [chr(c) for c in range(0x110000)
                if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"]
  texts = characters + ["", " \u200b\u3000\t\r\n\ufeff", "\u200ba\u200b", "\u00a0 x", "\u2028\u2029"]
  served = preprocessing.empty_texts(tf.constant([t.encode("utf-8") for t in texts])).numpy()
  expected = [text_validity.is_empty(text) for text in texts]
  assert served.tolist() == expected
  assert sum(expected) > 200  # separators, format and control characters, and the empty texts


def test_export_refuses_an_existing_folder(tmp_path):
  with pytest.raises(errors.KaleidoError, match="exists; pass a new folder"):
    export.export(str(tmp_path / "any_run"), str(tmp_path))


def test_a_damaged_export_is_named_in_one_sentence(served, setup, tmp_path):
  del served  # the exports exist
  base, _, _ = setup
  source = base / "exports" / "category"
  info = export.verify(str(source))
  assert "saved_model.pb" in info["files"] and any(
      name.startswith("variables/") for name in info["files"])
  for damaged, change in (("saved_model.pb", "truncate"), ("variables/variables.index", "zero"),
                          ("kaleido_export.json", "garble")):
    copy = tmp_path / f"{change}"
    shutil.copytree(source, copy)
    path = copy / damaged
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "zero": bytes(len(data)),
                      "garble": b"\xff\x00{"}[change])
    with pytest.raises(errors.KaleidoError, match=f"{damaged.split('/')[-1]}.* is damaged .*"
                       "export the run again"):
      export.verify(str(copy))
  (tmp_path / "missing").mkdir()
  shutil.copytree(source, tmp_path / "missing" / "export")
  os.remove(tmp_path / "missing" / "export" / "saved_model.pb")
  with pytest.raises(errors.KaleidoError, match="saved_model.pb' of the SavedModel is missing"):
    export.verify(str(tmp_path / "missing" / "export"))
