"""Runs train.py's `main` for several command lines in one process (one TensorFlow start instead
of one per command line); prints one JSON list of {"returncode", "stderr"}.

  python -m tests.train_in_process '[["--train_data=...", "--num_heads=3"], ...]'

(from the repository root, so that train.py is importable).

Each command line is parsed by absl exactly as `python train.py ...` parses it, with the flags
reset in between; `main` is the one train.py runs, so a user error is its one "error:" line and
exit status 1. An exception other than SystemExit is not caught: it ends the process with a
traceback, as it would end train.py.
"""

import contextlib
import io
import json
import sys

from absl import flags

import kaleido  # pylint: disable=unused-import  (before TensorFlow: its Keras setting)
from kaleido.commands import train


def _run(argv: list[str]) -> dict:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train.py", *argv])
  stderr, returncode = io.StringIO(), 0
  with contextlib.redirect_stderr(stderr):
    try:
      train.main([])
    except SystemExit as exit_:
      returncode = exit_.code
  return {"returncode": returncode, "stderr": stderr.getvalue()}


if __name__ == "__main__":
  print(json.dumps([_run(argv) for argv in json.loads(sys.argv[1])]))
