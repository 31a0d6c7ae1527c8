"""Counts the floating-point operations of a traced TensorFlow function from its graph.

Only the ops that dominate transformer and CNN cost are counted, each as 2 x multiply-adds:
MatMul, BatchMatMul, Einsum and Conv2D (TensorFlow's own profiler has no count for Einsum,
which the Keras dense and attention layers use).
"""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf


def _shape(tensor: tf.Tensor) -> list[int]:
  dims = tensor.shape.as_list()
  if any(d is None for d in dims):
    raise ValueError(f"{tensor.name} has an unknown dimension {dims}; trace with static shapes.")
  return dims


def _matmul_flops(op: tf.Operation) -> int:
  """2 x (every output element) x (the contracted size, read off the second operand)."""
  transposed = op.get_attr("transpose_b" if op.type == "MatMul" else "adj_y")
  second = _shape(op.inputs[1])
  inner = second[-1] if transposed else second[-2]
  return 2 * math.prod(_shape(op.outputs[0])) * inner


def _einsum_flops(op: tf.Operation) -> int:
  equation = op.get_attr("equation").decode()
  operands = equation.split("->")[0].split(",")
  sizes = {}
  for letters, tensor in zip(operands, op.inputs):
    for letter, size in zip(letters.replace("...", ""), _shape(tensor)[-len(
        letters.replace("...", "")):]):
      sizes[letter] = size
  return 2 * math.prod(sizes.values()) if len(operands) == 2 else 0


def _conv_flops(op: tf.Operation) -> int:
  kernel = _shape(op.inputs[1])  # (kh, kw, in, out)
  out = _shape(op.outputs[0])  # (batch, h, w, out)
  return 2 * math.prod(out) * kernel[0] * kernel[1] * kernel[2]


_COUNTERS = {
    "MatMul": _matmul_flops,
    "BatchMatMulV2": _matmul_flops,
    "BatchMatMulV3": _matmul_flops,
    "Einsum": _einsum_flops,
    "Conv2D": _conv_flops,
}


def graph_flops(graph: tf.Graph) -> int:
  """Sum of the counted ops' FLOPs in `graph`, including nested function bodies."""
  total = sum(_COUNTERS[op.type](op) for op in graph.get_operations() if op.type in _COUNTERS)
  for function in getattr(graph, "_functions", {}).values():
    if hasattr(function, "graph"):
      total += graph_flops(function.graph)
  return total


def function_flops(fn: Callable, *args) -> int:
  """FLOPs of one call of `fn(*args)`, traced with the arguments' static shapes."""
  concrete = tf.function(fn).get_concrete_function(*args)
  return graph_flops(concrete.graph)
