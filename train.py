"""Pre-training and fine-tuning entry point (not implemented yet).

Pre-training (AMLM, ITM and the five kaleido tasks under tf.distribute) is tracked in issue #3 and
fine-tuning in issue #5. Until then this command says so and exits with status 2.
"""

import sys


def main() -> int:
  print("train.py is not implemented yet: pre-training arrives with issue #3 and fine-tuning "
        "with issue #5. Data preparation works today: see README.md (python data/prepare.py).",
        file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main())
