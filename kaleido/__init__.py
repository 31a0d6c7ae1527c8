"""Kaleido-BERT in TensorFlow 2 / Keras 2 (tf_keras).

Importing the package before TensorFlow makes `tf.keras` the Keras 2 this project is written for
(TF_USE_LEGACY_KERAS, unless already set). The project itself imports `tf_keras`; the setting keeps
any `tf.keras` a dependency touches on the same Keras, and spares each process importing Keras 3
(2-3 s of start-up on a 2-core machine).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
