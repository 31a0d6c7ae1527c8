"""Defaults shared by the search library and its commands (tools/build_index.py and
tools/search.py)."""

BATCH_SIZE = 32  # images (indexing) or pairs (re-ranking) per model call
CHUNK_SIZE = 1024  # indexed images per chunk file, the unit of resumption
TOP_K = 10  # hits per query
