"""Pretrained weights: BERT checkpoints (readers, converter, loading into Kaleido-BERT) and
the patch CNN's weights (ResNet-50 files)."""
