"""Small hand-built catalogs for tests: products with known foreground boxes."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from kaleido.data import fashiongen

CATEGORIES = (("TOPS", "T-SHIRTS"), ("TOPS", "SHIRTS"), ("PANTS", "JEANS"), ("BAGS", "TOTE BAGS"))


def product_image(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, tuple]:
  """A light, slightly noisy studio background with one dark rounded product; and its box."""
  background = rng.integers(225, 250, size=3)
  image = np.clip(background + rng.normal(0, 2.0, (size, size, 3)), 0, 255).astype(np.uint8)
  width, height = rng.integers(size // 4, size * 3 // 4, size=2)
  x1, y1 = rng.integers(4, size - width - 4), rng.integers(4, size - height - 4)
  colour = tuple(int(c) for c in rng.integers(10, 160, size=3))
  cv2.rectangle(image, (int(x1), int(y1)), (int(x1 + width - 1), int(y1 + height - 1)), colour, -1)
  return image, (int(x1), int(y1), int(x1 + width), int(y1 + height))


def fashiongen_products(num_products: int, seed: int = 0,
                        descriptions: list[str] | None = None) -> list:
  """Products with 1-3 views each, texts naming the product."""
  rng = np.random.default_rng(seed)
  products = []
  for i in range(num_products):
    category, subcategory = CATEGORIES[i % len(CATEGORIES)]
    views = [product_image(rng)[0] for _ in range(1 + i % 3)]
    description = (descriptions[i] if descriptions else
                   f"Cotton {subcategory.lower()} in dark tone number {i}. Appliqué at front.")
    products.append(fashiongen.FashionGenProduct(
        product_id=1000 + i,
        text=fashiongen.ProductText(
            name=f"Dark {subcategory.lower()} {i}", description=description, brand="Brand",
            gender="WOMEN", season="SS2017", composition="100% cotton", department="CLOTHING",
            msrp_usd=99.0),
        category=category, subcategory=subcategory, images=views, poses=[f"id_gridfs_{v + 1}" for v in range(len(views))]))
  return products


def write_jsonl(folder: str, lines: list[dict | str]) -> str:
  """Writes catalog.jsonl in `folder`; a str line is written verbatim (to test bad JSON)."""
  path = os.path.join(folder, "catalog.jsonl")
  with open(path, "w", encoding="utf-8") as f:
    for line in lines:
      f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
  return path


def write_png(folder: str, name: str, image: np.ndarray) -> str:
  cv2.imwrite(os.path.join(folder, name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  return name


VOCAB_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-", "%", "at", "in",
                "front", "cotton", "dark", "tone", "number", "applique", "t", "shirt", "shirts",
                "jeans", "tote", "bags", "red", "blue", "with", "pocket"] + [str(i) for i in
                                                                            range(100)]


def write_vocab(folder: str) -> str:
  path = os.path.join(folder, "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB_TOKENS) + "\n")
  return path


def prepared_demo(folder: str, num_products: int, seed: int, patch_size: int = 16,
                  max_seq_length: int = 32, num_shards: int = 0) -> str:
  """A demo catalog prepared with a small learned vocabulary; returns the prepared folder."""
  from kaleido.demo import generator as demo  # pylint: disable=g-import-not-at-top
  from kaleido.patches import generator  # pylint: disable=g-import-not-at-top
  from kaleido.records import prepare  # pylint: disable=g-import-not-at-top
  from kaleido.records import prepare_config  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  catalog_path = os.path.join(folder, "demo.h5")
  demo.make_demo_catalog(catalog_path, num_products, seed=seed)
  vocab_file = os.path.join(folder, "vocab.txt")
  vocab.write_vocab(vocab_file, vocab.learn_vocab(
      vocab.catalog_texts(catalog_path, "description"), 400, min_token_count=2))
  output_dir = os.path.join(folder, "prepared")
  prepare.prepare_catalog(prepare_config.PrepareConfig(
      input_path=catalog_path, output_dir=output_dir, vocab_file=vocab_file,
      patch=generator.PatchConfig(patch_size=patch_size), max_seq_length=max_seq_length,
      workers=0, num_shards=num_shards))
  return output_dir


def tiny_experiment(data: str, model_dir: str, task: str = "pretrain", train_steps: int = 2,
                    batch_size: int = 4, num_layers: int = 2, dropout: float = 0.0,
                    training: dict | None = None, optimizer: dict | None = None,
                    eval_data: str = "", evaluation: dict | None = None,
                    finetune: dict | None = None, data_options: dict | None = None,
                    pretraining: dict | None = None):
  """A validated experiment config of a tiny Kaleido-BERT (H=32, small patch CNN) on `data`
  (`data_options`, `finetune`, `pretraining`: further fields of those configs)."""
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  manifest = manifest_lib.load(data)
  label_names = manifest_lib.label_names(manifest, task)
  return config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(
          name=task, pretraining=config_lib.PretrainingConfig(**(pretraining or {})),
          finetune=config_lib.FinetuneConfig(num_classes=len(label_names),
                                             **(finetune or {}))),
      data=config_lib.DataConfig(train_data=data, eval_data=eval_data, label_names=label_names,
                                 vocab_file=manifest.vocab_file,
                                 vocab_hash=manifest.vocab_hash,
                                 max_seq_length=manifest.max_seq_length,
                                 patch_size=manifest.patch_size, **(data_options or {})),
      model=config_lib.KaleidoBertConfig(
          vocab_size=len(vocab.read_vocab(manifest.vocab_file)), hidden_size=32,
          num_layers=num_layers, num_heads=2, intermediate_size=64,
          max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size,
          patch_cnn="small", dropout_rate=dropout, attention_dropout_rate=dropout),
      optimizer=config_lib.OptimizerConfig(**{"learning_rate": 1e-3, "warmup_steps": 0,
                                              **(optimizer or {})}),
      training=config_lib.TrainingConfig(**{"model_dir": model_dir, "train_steps": train_steps,
                                            "batch_size": batch_size, **(training or {})}),
      evaluation=config_lib.EvaluationConfig(**(evaluation or {}))))
