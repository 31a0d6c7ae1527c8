"""Captioning metrics equal pycocoevalcap's own on the same captions; the Java-free path."""

import pytest
from pycocoevalcap.bleu import bleu
from pycocoevalcap.cider import cider
from pycocoevalcap.meteor import meteor
from pycocoevalcap.rouge import rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from kaleido import errors
from kaleido.metrics import captioning

PREDICTIONS = {
    "1": "A red cotton T-shirt with short sleeves.",
    "2": "Black leather boots, with a side zip.",
    "3": "Slim-fit blue jeans in stretch denim.",
}
REFERENCES = {
    "1": ["Red short sleeve t-shirt in cotton jersey.", "A red tee in cotton."],
    "2": ["Ankle boots in black leather. Zip at the side."],
    "3": ["Skinny jeans in blue stretch denim; five pockets.", "Blue slim jeans."],
}
needs_java = pytest.mark.skipif(not captioning.java_available(),
                                reason="Java is not installed: no PTB tokenizer, no METEOR 1.5.")


@needs_java
def test_equal_to_pycocoevalcap_called_directly():
  tokenizer = ptbtokenizer.PTBTokenizer()
  gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in REFERENCES.items()})
  res = tokenizer.tokenize({k: [{"caption": c}] for k, c in PREDICTIONS.items()})
  bleu_scores, _ = bleu.Bleu(4).compute_score(gts, res, verbose=0)
  expected = {f"BLEU-{n}": 100 * s for n, s in enumerate(bleu_scores, start=1)}
  expected["METEOR"] = 100 * meteor.Meteor().compute_score(gts, res)[0]
  expected["ROUGE-L"] = 100 * rouge.Rouge().compute_score(gts, res)[0]
  expected["CIDEr"] = 100 * cider.Cider().compute_score(gts, res)[0]
  result = captioning.caption_metrics(PREDICTIONS, REFERENCES)
  assert {k: result[k] for k in captioning.METRIC_NAMES} == pytest.approx(expected, rel=1e-12)
  assert 0 < result["BLEU-4"] < result["BLEU-1"] < 100
  assert result["tokenizer"] == "ptb" and result["notes"] == [] and result["num_captions"] == 3


@needs_java
def test_a_line_break_inside_a_caption_does_not_shift_the_ids():
  # pycocoevalcap replaces only "\n", so a "\r" would give the PTB tokenizer an extra line.
  res, gts = captioning._tokenize({"a": "red shirt", "b": "blue jeans"},
                                  {"a": ["Red\r\nshirt."], "b": ["Blue jeans!"]}, use_ptb=True)
  assert res == {"a": ["red shirt"], "b": ["blue jeans"]}
  assert gts == {"a": ["red shirt"], "b": ["blue jeans"]}


@needs_java
def test_ptb_tokenize_equals_pycocoevalcap_without_writing_into_its_package(monkeypatch):
  captions = {"a": ["It's a \"slim-fit\" T-shirt (3/4 sleeves), 100% cotton!", "Größe M; zip."],
              "b": ["[Logo] at front... and back -- see: tag?"], "c": [""]}
  expected = ptbtokenizer.PTBTokenizer().tokenize(
      {key: [{"caption": c} for c in texts] for key, texts in captions.items()})

  def refuse(*args, **kwargs):
    raise AssertionError(f"wrote a temporary file with {args} {kwargs}")

  monkeypatch.setattr(ptbtokenizer.tempfile, "NamedTemporaryFile", refuse)
  assert captioning.ptb_tokenize(captions) == expected
  assert expected["a"][0].startswith("it 's a slim-fit t-shirt -lrb- 3/4")


def test_without_java_metrics_that_need_no_java_and_a_note():
  predictions = {"a": "Red cotton T-shirt with short sleeves.", "b": "nothing alike here at all"}
  references = {"a": ["red cotton t-shirt, with short sleeves"], "b": ["black leather boots"]}
  result = captioning.caption_metrics(predictions, references, use_java=False)
  assert "METEOR" not in result
  assert result["tokenizer"] == "simple"
  assert result["notes"] == [captioning.NO_JAVA_NOTE] and "Java is not installed" in (
      result["notes"][0])
  # Corpus BLEU-1: 6 of 11 candidate unigrams match; the brevity penalty is 1 (11 >= 9).
  assert result["BLEU-1"] == pytest.approx(100 * 6 / 11, rel=1e-6)
  assert result["ROUGE-L"] == pytest.approx(50.0)  # caption a scores 1, caption b 0


def test_simple_tokenizer():
  assert captioning.simple_tokenize('A red T-shirt, in "cotton"... (size 3/4) $5.99!') == (
      "a red t-shirt in cotton size 3/4 $ 5.99")


def test_ids_must_match_and_references_exist():
  with pytest.raises(errors.KaleidoError, match=r"no prediction for 1 id\(s\), e.g. 'b'"):
    captioning.caption_metrics({"a": "x"}, {"a": ["x"], "b": ["y"]}, use_java=False)
  with pytest.raises(errors.KaleidoError, match="Id 'a' has no reference"):
    captioning.caption_metrics({"a": "x"}, {"a": []}, use_java=False)
