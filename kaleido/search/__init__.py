"""Search over a whole catalog: an index of independent (ITC) embeddings and cached patch
features, a first stage over every item, the ITM cross-encoder re-ranking the best, a results
page."""
