"""Opening a catalog of any supported kind (Fashion-Gen HDF5, JSON lines) by its file name."""

from __future__ import annotations

import os

from kaleido.data import catalog
from kaleido.data import fashiongen
from kaleido.data import jsonl_catalog
from kaleido.utils import filesystems


def open_catalog(path: str, text_encoding: str = "auto") -> catalog.Catalog:
  """Opens a Fashion-Gen HDF5 (`.h5`) or JSON-lines (`.jsonl`) catalog by its extension.
  `text_encoding` is the HDF5 file's (fashiongen.TEXT_ENCODINGS); JSON lines are UTF-8."""
  try:
    found = filesystems.exists(path)
  except filesystems.FilesystemError as error:
    raise catalog.CatalogError(str(error)) from error
  if not found:
    raise catalog.CatalogError(
        f"Catalog file {path!r} does not exist; pass an existing .h5 or .jsonl file "
        "(python data/make_demo.py writes a demo one).")
  extension = os.path.splitext(path)[1].lower()
  if extension in (".h5", ".hdf5"):
    if filesystems.is_url(path):
      raise catalog.CatalogError(
          f"Catalog {path!r} is an HDF5 file on a remote filesystem, which is read row by row at "
          "random; copy it to a local or mounted disk (its images may stay where they are only "
          "in a .jsonl catalog).")
    return fashiongen.FashionGenCatalog(path, text_encoding)
  if extension in (".jsonl", ".json"):
    if text_encoding not in ("auto", "utf-8"):
      raise catalog.CatalogError(
          f"--text_encoding={text_encoding} does not apply to {path!r}: JSON lines are UTF-8; "
          "drop the flag.")
    return jsonl_catalog.JsonlCatalog(path)
  raise catalog.CatalogError(
      f"Catalog file {path!r} has an unknown extension {extension!r}; use a Fashion-Gen "
      ".h5 file or a .jsonl catalog.")
