"""FLOPs of a Kaleido-BERT task model's forward pass, counted on its traced graphs."""

from __future__ import annotations

import tensorflow as tf

from kaleido.model import kaleido_bert
from kaleido.utils import flops


def forward_flops(model: kaleido_bert.TaskModel, inputs: dict[str, tf.Tensor],
                  **call_kwargs) -> tuple[float, float]:
  """(patch embedder, everything else) FLOPs of one forward pass of `model` on `inputs` (batch
  included; `call_kwargs` to the call, e.g. matching_only), counted on the traced graphs
  (kaleido.utils.flops); the embedder's are 0 on cached patch features."""
  total = flops.function_flops(lambda x: model(x, training=False, **call_kwargs), inputs)
  if "patches" not in inputs:
    return 0.0, float(total)
  patches = inputs["patches"]
  if "grey_targets" in inputs:  # pre-training embeds the G2CM targets in the same pass
    patches = tf.concat([patches, inputs["grey_targets"]], axis=1)
  embedder = model.backbone.patch_embedder
  patch_cnn = flops.function_flops(lambda p: embedder(p, training=False), patches)
  return float(patch_cnn), float(total - patch_cnn)
