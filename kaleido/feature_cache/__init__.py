"""Patch features computed once: a frozen patch CNN's features of every patch variant of every
image of a prepared folder, so training, evaluation and indexing read features, not pixels."""
