r"""Evaluates Kaleido-BERT on the paper's downstream tasks (section 4.2, Tables 2-3).

  python evaluate.py --task=all --checkpoint=runs/finetune/checkpoints --eval_data=demo \
      --output_json=runs/eval/metrics.json --summary_dir=runs/eval/tensorboard
  python evaluate.py --task=caption --predictions=captions.jsonl   # any captioner, no model

Prints the measured metrics beside the paper's. With --output_json, the metrics JSON is written
there, and beside it the confusion matrices (<name>.category_confusion.csv, ...) and the generated
captions with their references (<name>.captions.jsonl, re-scorable with --predictions). Retrieval
protocols: kaleido/evaluation/sampling.py; --index_file keeps the draws to repeat a run exactly.
The flags are kaleido/evaluation/request.py's; kaleido/evaluation/runner.py does the work.
"""


from kaleido.evaluation import request as request_lib
from kaleido.evaluation import runner
from kaleido.utils import cli

request_lib.define_flags()


@cli.user_errors_as_messages
def main(argv):
  del argv
  request = request_lib.from_flags()
  results, step = runner.evaluate(request)
  runner.write(request, results, step)


def run() -> None:
  """The `kaleido-evaluate` command."""
  cli.run(main)


if __name__ == "__main__":
  run()
