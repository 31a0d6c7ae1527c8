"""Captioning metrics of the COCO caption evaluation code (pycocoevalcap), x100 as in Table 3.

BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr(-D, pycocoevalcap's default) over predictions {id:
caption} and references {id: [captions]}. Captions are first tokenized by the Stanford PTB
tokenizer (lower case, punctuation removed), exactly as the COCO evaluation does, after collapsing
each caption's whitespace (see `_one_line`). PTB tokenization and METEOR run on Java. Without
Java, METEOR is left out and captions are tokenized by `simple_tokenize` instead (lower case,
words split from punctuation, PTB's punctuation tokens dropped); the result then names that
tokenizer and its numbers are close to, not equal to, the PTB ones.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from typing import Mapping, Sequence

from pycocoevalcap.bleu import bleu
from pycocoevalcap.cider import cider
from pycocoevalcap.meteor import meteor
from pycocoevalcap.rouge import rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from kaleido import errors
from kaleido.utils import text_validity

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
NO_JAVA_NOTE = ("Java is not installed (no working `java` on PATH), so METEOR was skipped and "
                "captions were tokenized by a simple regex instead of the PTB tokenizer; install "
                "a Java runtime (e.g. apt-get install default-jre) for the paper's metrics.")
# Java-free tokenizer: words (letters/digits joined by - ' . /, e.g. "t-shirt", "5.99", "3/4")
# and single symbols; the symbols PTB's wrapper drops (its punctuation list, brackets, quotes) go.
_TOKEN = re.compile(r"\w+(?:[-'./]\w+)*|[^\w\s]")
_DROPPED = frozenset(".,;:!?'\"`-()[]{}")


@functools.lru_cache(maxsize=1)
def java_available() -> bool:
  """True when `java -version` runs."""
  if not shutil.which("java"):
    return False
  try:
    return subprocess.run(["java", "-version"], capture_output=True, timeout=60,
                          check=False).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def simple_tokenize(caption: str) -> str:
  """Java-free stand-in for the PTB tokenizer: lower case, punctuation split off and dropped.

  Differs from PTB in details (PTB splits "it's" into "it 's" and keeps brackets as "-lrb-").
  """
  return " ".join(t for t in _TOKEN.findall(caption.lower()) if t not in _DROPPED)


def _one_line(caption: str) -> str:
  """Collapses all whitespace into single spaces.

  pycocoevalcap replaces only "\\n": a "\\r" or other line break left in a caption makes the PTB
  tokenizer emit an extra line and shifts every later caption onto the wrong id.
  """
  return " ".join(caption.split())


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
  """{id: [caption]} -> {id: [PTB-tokenized caption]}, as pycocoevalcap's PTBTokenizer does it
  (its Stanford CoreNLP jar, flags and punctuation list), but with the input file in the system's
  temporary folder: pycocoevalcap writes it into its installed package folder, which fails where
  site-packages is read-only."""
  jar = os.path.join(os.path.dirname(os.path.abspath(ptbtokenizer.__file__)),
                     ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
  ids = [key for key, texts in captions.items() for _ in texts]
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "captions.txt")
    with open(path, "wb") as f:
      f.write("\n".join(_one_line(t) for texts in captions.values() for t in texts).encode())
    result = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer",
                             "-preserveLines", "-lowerCase", path],
                            capture_output=True, check=False)
  if result.returncode:
    raise errors.KaleidoError(
        f"The PTB tokenizer (java -cp {jar}) failed: "
        f"{result.stderr.decode(errors='replace').strip()[:300]}; check the Java runtime.")
  tokenized: dict[str, list[str]] = {key: [] for key in captions}
  for key, line in zip(ids, result.stdout.decode().split("\n")):
    tokenized[key].append(" ".join(word for word in line.rstrip().split(" ")
                                   if word not in ptbtokenizer.PUNCTUATIONS))
  return tokenized


def check_captions(predictions: Mapping[str, str],
                   references: Mapping[str, Sequence[str]]) -> None:
  """One-sentence errors for ids that do not match or empty reference lists."""
  missing = sorted(set(references) - set(predictions), key=str)
  extra = sorted(set(predictions) - set(references), key=str)
  if missing or extra:
    which = (f"references but no prediction for {len(missing)} id(s), e.g. {missing[0]!r}"
             if missing else
             f"a prediction but no references for {len(extra)} id(s), e.g. {extra[0]!r}")
    raise errors.KaleidoError(f"Predictions and references must cover the same ids: {which}.")
  if not predictions:
    raise errors.KaleidoError("There are no captions to score.")
  empty = [key for key, refs in references.items() if not refs]
  if empty:
    raise errors.KaleidoError(f"Id {empty[0]!r} has no reference caption; every id needs at "
                              "least one.")


def _tokenize(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
              use_ptb: bool) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
  """{id: [tokenized caption]} and {id: [tokenized references]}."""
  if not use_ptb:
    return ({key: [simple_tokenize(c)] for key, c in predictions.items()},
            {key: [simple_tokenize(r) for r in refs] for key, refs in references.items()})
  return (ptb_tokenize({key: [c] for key, c in predictions.items()}),
          ptb_tokenize(references))


def caption_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                    use_java: bool | None = None) -> dict:
  """BLEU-1..4, METEOR, ROUGE-L, CIDEr (x100) of `predictions` against `references`.

  Args:
    predictions: {id: generated caption}.
    references: {id: [reference captions]}, the same ids.
    use_java: None detects Java; False forces the Java-free path (no METEOR, simple tokenizer).

  Returns:
    The metrics (floats), "tokenizer" ("ptb" or "simple"), "num_captions",
    "num_empty_captions" and "notes" (without Java, the sentence that says so; with empty
    captions, how many).
  """
  check_captions(predictions, references)
  use_java = java_available() if use_java is None else use_java
  res, gts = _tokenize(predictions, references, use_ptb=use_java)
  bleu_scores, _ = bleu.Bleu(4).compute_score(gts, res, verbose=0)
  metrics: dict = {
      f"BLEU-{n}": 100.0 * score for n, score in enumerate(bleu_scores, start=1)}
  if use_java:
      metrics["METEOR"] = 100.0 * meteor.Meteor().compute_score(gts, res)[0]
  metrics["ROUGE-L"] = 100.0 * float(rouge.Rouge().compute_score(gts, res)[0])
  metrics["CIDEr"] = 100.0 * float(cider.Cider().compute_score(gts, res)[0])
  metrics["tokenizer"] = "ptb" if use_java else "simple"
  metrics["num_captions"] = len(predictions)
  metrics["notes"] = [] if use_java else [NO_JAVA_NOTE]
  empty = sorted((key for key, caption in predictions.items()
                  if text_validity.is_empty(caption)), key=str)
  metrics["num_empty_captions"] = len(empty)
  if empty:
    metrics["notes"].append(f"{len(empty)} of the {len(predictions)} captions are empty (e.g. "
                            f"id {empty[0]!r}); they were scored as empty, which lowers every "
                            "metric.")
  return metrics
