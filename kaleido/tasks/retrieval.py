"""Image-text retrieval fine-tuning (paper section 4.2): the ITM head, with negatives from the
same subcategory, on product names (titles) by default."""

from __future__ import annotations

import tensorflow as tf

from kaleido.dataloaders import finetuning
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune


class RetrievalTask(finetune.FinetuneTask):
  """ITM cross-entropy; `negative_fraction` of each batch is paired with the image of another
  product of the same subcategory (another subcategory when the batch has none)."""

  loss_name = "itm"

  def dataset(self, batch_size, seed, input_context, training=True):
    return finetuning.retrieval_dataset(self.data_folder(training), batch_size, self.finetune,
                                        seed, input_context, self.config.task.name_as_text)

  def terms(self, batch, outputs):
    labels = batch["itm_label"]
    return losses_lib.classification_terms(labels, outputs["itm_logits"],
                                           tf.ones_like(labels, tf.float32))
