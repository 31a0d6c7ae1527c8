"""The commands users run, each a `run()` behind a console script (pyproject.toml) and a script
of the same name at the top of the repository (train.py, evaluate.py, data/prepare.py, tools/)."""
