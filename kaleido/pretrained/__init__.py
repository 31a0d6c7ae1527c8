"""Pretrained weights: BERT checkpoints (readers, converter, loading into Kaleido-BERT) and
ResNet-50 backbone weights."""
