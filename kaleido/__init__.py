"""Kaleido-BERT in TensorFlow 2 / Keras 2 (tf_keras).

Importing the package before TensorFlow makes `tf.keras` the Keras 2 this project is written for
(TF_USE_LEGACY_KERAS, unless already set). The project itself imports `tf_keras`; the setting keeps
any `tf.keras` a dependency touches on the same Keras, and spares each process importing Keras 3
(2-3 s of start-up on a 2-core machine).

It also keeps TensorFlow's C++ log lines off stderr (TF_CPP_MIN_LOG_LEVEL=3, unless already set):
the CUDA probes of a CPU-only machine ("failed call to cuInit"), the oneDNN and CPU-feature
notices that every command would otherwise start with. A failing TensorFlow operation still raises
its Python error with the message; `TF_CPP_MIN_LOG_LEVEL=0 python train.py ...` shows every line.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
