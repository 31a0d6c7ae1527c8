"""One rule for an empty text: nothing but separators, format and control characters."""

import pytest

from kaleido.utils import text_validity


@pytest.mark.parametrize("text", ["", " ", "\u200b", "\u00a0\u3000", "\ufeff\t\r\n",
                                  "\u200e\u2028\u2029 \u200b"])
def test_texts_of_invisible_characters_are_empty(text):
  assert text_validity.is_empty(text) and text_validity.clean(text) == ""


def test_clean_keeps_every_visible_character_and_those_between():
  assert text_validity.clean("\u200b Red\u00a0shirt \u3000\r\n") == "Red\u00a0shirt"
  assert text_validity.clean("\u200bé\u200b") == "é"
  assert not text_validity.is_empty("\u200bx") and not text_validity.is_empty("。")
