"""Attention-based Alignment Generator (paper section 3.3): a Show-Attend-Tell captioner whose
per-token attention maps become (text token, kaleido patch, score) alignment pairs."""
