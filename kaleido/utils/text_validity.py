"""When a text counts as empty: one rule for preparation, vocabulary learning, evaluation,
search and serving.

A text is empty when it has no character outside Unicode's separators (Z*: spaces such as U+00A0
and U+3000), format characters (Cf: U+200B zero-width space, U+FEFF, bidi marks) and control
characters (Cc: tabs, line ends), the characters that show nothing. Python's `str.strip()` keeps
the format characters, so "\u200b" would pass it as a text.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE_CATEGORIES = ("Z", "Cf", "Cc")
# The same rule as an RE2 pattern over a whole text, for TensorFlow graphs (serving).
EMPTY_TEXT_PATTERN = r"[\pZ\p{Cf}\p{Cc}]*"


def _is_invisible(character: str) -> bool:
  category = unicodedata.category(character)
  return character.isspace() or category.startswith(_INVISIBLE_CATEGORIES)


def clean(text: str) -> str:
  """`text` without the invisible characters at its two ends ("" for an empty text)."""
  start, end = 0, len(text)
  while start < end and _is_invisible(text[start]):
    start += 1
  while end > start and _is_invisible(text[end - 1]):
    end -= 1
  return text[start:end]


def is_empty(text: str) -> bool:
  """Whether `text` shows no character (see the module docstring)."""
  return not clean(text)
