#!/usr/bin/env bash
# The whole pipeline on the demo catalog: pre-train, fine-tune the four downstream tasks from the
# pre-training run, and evaluate each on the demo's validation split (products unseen in training).
# Metrics land in runs/demo_eval/*.json and in TensorBoard (runs/demo_eval/tensorboard); pass
# NO_PRETRAIN=1 to fine-tune from random weights instead (the "not pre-trained" baseline).
# A variant of the pre-training (e.g. other data or masking) runs as
#   SUFFIX=_agm PRETRAIN_FLAGS="--train_data=DIR --masking=agm" tools/run_demo.sh
# and writes every run folder with that suffix (runs/demo_pretrain_agm, runs/demo_eval_agm, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
suffix="${SUFFIX:-}"
read -r -a pretrain_flags <<< "${PRETRAIN_FLAGS:-}"
init=(--init_checkpoint="runs/demo_pretrain${suffix}")
if [[ "${NO_PRETRAIN:-0}" == 1 ]]; then
  suffix="_scratch${suffix}"
  # The same word-pretrained small backbone as the pre-training run has (same data and seed).
  python tools/pretrain_backbone.py --train_data=workdir/demo/prepared/train \
      --output=runs/demo_backbone_words.h5
  init=(--init_checkpoint= --backbone=small --resnet_weights=runs/demo_backbone_words.h5
        --hidden_size=128 --num_layers=3 --num_heads=4 --intermediate_size=512)
else
  python train.py --flagfile=configs/demo_pretrain.flags --model_dir="runs/demo_pretrain${suffix}" \
      ${pretrain_flags[@]+"${pretrain_flags[@]}"}
fi
for task in retrieval category subcategory caption; do
  python train.py --flagfile="configs/demo_${task}.flags" "${init[@]}" \
      --model_dir="runs/demo_${task}${suffix}"
done
out="runs/demo_eval${suffix}"
mkdir -p "$out"
evaluate() {  # task, checkpoint
  python evaluate.py --task="$1" --checkpoint="$2" --eval_data=demo --demo_dir=workdir/demo \
      --output_json="$out/$1.json" --summary_dir="$out/tensorboard" --index_file="$out/draws.json" \
      --num_draws=2
}
evaluate itr "runs/demo_retrieval${suffix}"
evaluate tir "runs/demo_retrieval${suffix}"
evaluate category "runs/demo_category${suffix}"
evaluate subcategory "runs/demo_subcategory${suffix}"
evaluate caption "runs/demo_caption${suffix}"
