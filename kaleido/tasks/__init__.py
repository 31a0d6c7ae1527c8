"""Training tasks: pre-training (paper sections 3.4-3.6) and the downstream tasks of section 4.2.

Each task says what model to build, what data it trains on and what it minimises; the one trainer
(kaleido.training.trainer) runs any of them under any tf.distribute strategy.
"""
