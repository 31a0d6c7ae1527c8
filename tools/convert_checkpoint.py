r"""Converts a BERT checkpoint into the project's own format, which --bert_init also accepts.

  python tools/convert_checkpoint.py --source DIR --output PATH

DIR: a Google BERT TF1 directory (bert_config.json, bert_model.ckpt.*, vocab.txt), a TF Model
Garden encoder checkpoint, or a Hugging Face BERT directory (config.json, model.safetensors or
pytorch_model.bin, vocab.txt). PATH: a new directory with config.json, weights.npz and vocab.txt
(see kaleido/checkpoints/converted.py). Converting a pytorch_model.bin here once means later runs
need neither torch nor the original format.
"""

from absl import app
from absl import flags

from kaleido.utils import cli

_SOURCE = flags.DEFINE_string("source", None, "The BERT checkpoint directory (or TF prefix).")
_OUTPUT = flags.DEFINE_string("output", None, "The directory to write; must not exist yet.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido.pretrained import converted  # pylint: disable=g-import-not-at-top
  from kaleido.pretrained import readers  # pylint: disable=g-import-not-at-top
  checkpoint = readers.read_bert_checkpoint(_SOURCE.value)
  converted.write(checkpoint, _OUTPUT.value)
  print(f"Converted {checkpoint.describe()}")
  print(f"Wrote {len(checkpoint.weights)} weights"
        f"{' and vocab.txt' if checkpoint.vocab_file else ''} to {_OUTPUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["source", "output"])
  app.run(main)
