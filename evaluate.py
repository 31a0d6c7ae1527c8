"""Evaluation entry point (not implemented yet).

Retrieval, category recognition and captioning metrics are tracked in issue #5. Until then this
command says so and exits with status 2.
"""

import sys


def main() -> int:
  print("evaluate.py is not implemented yet: retrieval, category and captioning evaluation "
        "arrive with issue #5.", file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main())
