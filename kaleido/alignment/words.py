"""Words of WordPiece token sequences, normalised so generated and product texts can be compared.

A word is a token plus the "##" pieces that follow it; its text is lower-cased with accents
stripped ("Appliqué" and "app ##li ##qué" both become "applique"). Special tokens ([CLS], ...)
are no words and end the word before them. Content words are those worth aligning: at least
`min_length` characters, at least one letter, not a stop word (function words such as "in",
"with", "at"); punctuation tokens have no letter and never count.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Sequence

from kaleido.text import vocab as vocab_lib

PIECE_PREFIX = "##"
STOP_WORDS = frozenset("""
a about above after again all also an and any are as at be been before below between both but by
can could do does down during each either for from further had has have her here his how if in
into is it its itself more most no nor not of off on once one only or other our out over own per
same she so some such than that the their them then there these they this those through to too
under until up upon very was we were what when where which while who why will with within
without would you your
""".split())


@dataclasses.dataclass(frozen=True)
class Word:
  """A normalised word and the positions of its pieces in the token sequence."""
  text: str
  positions: tuple[int, ...]


def normalise(text: str) -> str:
  """Lower case without accents: NFD, combining marks dropped, case-folded."""
  decomposed = unicodedata.normalize("NFD", text)
  return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def group_words(tokens: Sequence[str]) -> list[Word]:
  """Merges "##" pieces into the word before them; positions index `tokens`."""
  words: list[tuple[str, list[int]]] = []
  open_word = False
  for position, token in enumerate(tokens):
    if token in vocab_lib.SPECIAL_TOKENS:
      open_word = False
    elif token.startswith(PIECE_PREFIX) and open_word:
      words[-1][0].append(token[len(PIECE_PREFIX):])
      words[-1][1].append(position)
    else:
      words.append(([token.removeprefix(PIECE_PREFIX)], [position]))
      open_word = True
  return [Word(normalise("".join(pieces)), tuple(positions)) for pieces, positions in words]


def is_content_word(text: str, min_length: int = 2) -> bool:
  """Whether a normalised word is worth aligning (see the module docstring)."""
  return (len(text) >= min_length and any(ch.isalpha() for ch in text) and
          text not in STOP_WORDS)


def content_positions(tokens: Sequence[str], min_length: int = 2) -> dict[str, list[int]]:
  """Normalised content word -> the positions of all pieces of all its occurrences."""
  positions: dict[str, list[int]] = {}
  for word in group_words(tokens):
    if is_content_word(word.text, min_length):
      positions.setdefault(word.text, []).extend(word.positions)
  return positions
