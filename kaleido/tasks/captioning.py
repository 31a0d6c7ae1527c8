"""Fashion captioning (paper section 4.2) in two modes behind one flag.

- one_shot (the paper's): every text position after [CLS] is [MASK]; the tied MLM decoder predicts
  the whole caption at once from the image.
- autoregressive (the default): a UniLM-style sequence-to-sequence attention mask (patches see
  patches; text position i sees every patch and the text at positions <= i), trained to predict
  the token at i + 1 from position i; decoded greedily or by beam search
  (kaleido.model.beam_search).
"""

from __future__ import annotations

from kaleido import config as config_lib
from kaleido.dataloaders import finetuning
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune


class CaptionTask(finetune.FinetuneTask):
  """Token cross-entropy of the caption under the chosen decoder mode."""

  def dataset(self, batch_size, seed, input_context, training=True):
    return finetuning.caption_dataset(self.data_folder(training), batch_size,
                                      self.finetune.caption_mode, self.special_ids, seed,
                                      input_context, self.feature_cache(training),
                                      config_lib.trims_text(self.config))

  def terms(self, batch, outputs):
    return losses_lib.classification_terms(batch["caption_ids"], outputs["lm_logits"],
                                           batch["caption_weights"])
