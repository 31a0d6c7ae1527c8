"""--patch_projection_from_words: the patch projections start as a ridge map from crop features
to the mean word embedding of the product's text."""

import numpy as np

from kaleido.pretrained import patch_words
from kaleido.tasks import factory
from tests import catalogs


def test_ridge_recovers_a_linear_map_and_shrinks_with_l2():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(400, 6))
  true_map = rng.normal(size=(6, 3))
  targets = features @ true_map
  np.testing.assert_allclose(patch_words.fit_ridge(features, targets, 1e-8), true_map, atol=1e-6)
  shrunk = patch_words.fit_ridge(features, targets, 10.0)
  assert np.linalg.norm(shrunk) < 0.2 * np.linalg.norm(true_map)
  assert patch_words.r_squared(targets, targets) == 1.0
  assert abs(patch_words.r_squared(np.broadcast_to(targets.mean(0), targets.shape), targets)) < 1e-12


def test_every_level_projection_starts_as_the_fitted_map(tmp_path):
  data = catalogs.prepared_demo(str(tmp_path), 6, seed=3)
  config = catalogs.tiny_experiment(data, str(tmp_path / "run"))
  model = factory.create_task(config).build_model()
  features, words = patch_words.crop_features_and_words(model, data, config.data.vocab_file)
  assert features.shape[0] == words.shape[0] > 6 and words.shape[1] == 32
  random_fit = patch_words.r_squared(
      features @ model.backbone.encoder.embeddings.level_projections[0].kernel.numpy(), words)

  note = patch_words.initialize_patch_projections(model, data, config.data.vocab_file)

  kernels = [p.kernel.numpy() for p in model.backbone.encoder.embeddings.level_projections]
  expected = patch_words.fit_ridge(features.astype(np.float64), words.astype(np.float64), 0.1)
  for kernel in kernels:
    np.testing.assert_allclose(kernel, expected, rtol=1e-4, atol=1e-6)
  fit = patch_words.r_squared(features @ kernels[0], words)
  assert fit > 0.3 > random_fit and f"R^2 {fit:.2f}" in note
