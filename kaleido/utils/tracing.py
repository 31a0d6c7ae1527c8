"""Tracing this project's graph code as written, without autograph.

The training step and the tf.data transformations use no Python control flow on tensors (their
branches and loops are TensorFlow ops), so autograph's source-to-source conversion of them and of
every function they call is pure start-up cost: about 3 s per pre-training input pipeline and
6 s per tiny training run on a 2-core machine (BUILD_NOTES, "Start-up"). A tensor used as a
Python bool inside them fails at trace time, so a change that needs autograph is caught by the
first run.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import tensorflow as tf

F = TypeVar("F", bound=Callable)


def plain(fn: F) -> F:
  """`fn` (a Dataset.map function) traced as written, without autograph conversion."""
  return tf.autograph.experimental.do_not_convert(fn)


def function(fn: Callable | None = None, **kwargs):
  """`tf.function(fn, **kwargs)` without autograph; usable as a decorator."""
  if fn is None:
    return lambda f: tf.function(f, autograph=False, **kwargs)
  return tf.function(fn, autograph=False, **kwargs)
