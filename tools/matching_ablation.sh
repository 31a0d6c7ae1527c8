#!/usr/bin/env bash
# Retrieval fine-tuning recipes side by side (issue #33): each recipe fine-tunes the same
# pre-training run for --task=retrieval, 600 steps (FLAGS="--train_steps=1800 ..." for the demo
# flag file's length), then is scored on one demo split with the same saved
# draws: sample-100 ITR / TIR ranked by the ITM margin alone and, for recipes with an ITC head,
# the full gallery by ITC alone, by the ITC top 20 re-ranked by the margin, and fused (margin +
# 20 x cosine). Results in OUT/<recipe>/*.json; summarise with tools/matching_table.py.
#
# Variables (all optional):
#   PRETRAIN=runs/demo_pretrain   the pre-training run every recipe starts from
#   SEED=0                        the fine-tuning seed
#   SPLIT=development             the demo split scored (development for choices, validation to report)
#   OUT=runs/matching_ablation    where runs and figures go
#   RECIPES="paper random"        which of the recipes below to run (default: all)
#   FLAGS="--train_steps=1800"    more fine-tuning flags, after each recipe's (e.g. a longer run)
set -euo pipefail
cd "$(dirname "$0")/.."
pretrain="${PRETRAIN:-runs/demo_pretrain}"
seed="${SEED:-0}"
split="${SPLIT:-development}"
out="${OUT:-runs/matching_ablation}"
read -r -a more <<< "${FLAGS:-}"
declare -A flags=(
  [paper]=""
  [random]="--negative_same_subcategory=0"
  [mixed]="--negative_same_subcategory=0.5"
  [k1_binary]="--negatives_per_positive=1 --negative_same_subcategory=0"
  [k3_listwise]="--negatives_per_positive=3 --itm_loss=listwise --negative_same_subcategory=0"
  [itc]="--itc_weight=1"
  [itc_k1_mined]="--itc_weight=1 --negatives_per_positive=1 --mined_negatives"
  [itc_k3_listwise_mined]="--itc_weight=1 --negatives_per_positive=3 --itm_loss=listwise --mined_negatives"
  [itc_k3_listwise_margin8]="--itc_weight=1 --negatives_per_positive=3 --itm_loss=listwise --mined_negatives --margin_shortlist=8"
  [itc_k3_listwise_mined_queue224]="--itc_weight=1 --negatives_per_positive=3 --itm_loss=listwise --mined_negatives --negative_queue=224"
  [itc_k3_listwise_mined_runs8]="--itc_weight=1 --negatives_per_positive=3 --itm_loss=listwise --mined_negatives --subcategory_runs=8"
  [k1_listwise]="--negatives_per_positive=1 --itm_loss=listwise --negative_same_subcategory=0"
  [k3_binary]="--negatives_per_positive=3 --negative_same_subcategory=0"
  [itc_k3_listwise]="--itc_weight=1 --negatives_per_positive=3 --itm_loss=listwise --negative_same_subcategory=0"
)
# Every recipe starts from the paper's ITM training (the demo flag file's own recipe is overridden)
paper=(--negatives_per_positive=0 --itm_loss=binary --nomined_negatives --itc_weight=0
       --negative_same_subcategory=1 --train_steps=600 --checkpoint_every=200 --eval_every=200)
recipes="${RECIPES:-paper random mixed k1_binary k3_listwise itc itc_k1_mined itc_k3_listwise_mined k1_listwise k3_binary itc_k3_listwise}"
mkdir -p "$out"
for recipe in $recipes; do
  [[ -v "flags[$recipe]" ]] || { echo "Unknown recipe $recipe; known: ${!flags[*]}" >&2; exit 2; }
  run="$out/$recipe"
  read -r -a extra <<< "${flags[$recipe]}"
  python train.py --flagfile=configs/demo_retrieval.flags --init_checkpoint="$pretrain" \
      --seed="$seed" --model_dir="$run" "${paper[@]}" ${extra[@]+"${extra[@]}"} ${more[@]+"${more[@]}"}
  score() {  # name, evaluate.py flags...
    local name="$1"; shift
    python evaluate.py --checkpoint="$run" --eval_data=demo --demo_dir=workdir/demo \
        --demo_split="$split" --num_draws=2 --index_file="$out/draws_${split}.json" \
        --output_json="$run/$name.json" "$@"
  }
  for task in itr tir; do
    score "sample100_$task" --task="$task"
    if [[ "${flags[$recipe]}" == *itc_weight* ]]; then
      score "full_itc_$task" --task="$task" --protocol=full --rerank=0 \
          --index_file="$out/draws_${split}_full.json"
      score "full_rerank20_$task" --task="$task" --protocol=full --rerank=20 \
          --index_file="$out/draws_${split}_full.json"
      score "full_fused20_$task" --task="$task" --protocol=full --rerank=20 --fusion_weight=20 \
          --index_file="$out/draws_${split}_full.json"
    fi
  done
done
