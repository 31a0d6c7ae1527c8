"""Input pipelines: prepared TFRecords -> the batches each task trains on (tf.data)."""
