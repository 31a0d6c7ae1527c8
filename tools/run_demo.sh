#!/usr/bin/env bash
# The whole pipeline on the demo catalog: pre-train (configs/demo_pretrain_matching.flags into
# runs/demo_pretrain_matching), fine-tune the four downstream tasks from the pre-training run, and
# evaluate each on the demo's validation split (products unseen in training). Metrics land in
# runs/demo_eval${SUFFIX}/*.json and in TensorBoard (.../tensorboard); every run of a split ranks
# the same saved draws (runs/demo_draws_<split>.json and _full.json).
#
# Variables (all optional):
#   SEED=1                       the pipeline seed (initial weights, masks, negatives, transforms)
#   BERT_INIT=all-MiniLM-L6-v2   start from a pretrained BERT (configs/demo_pretrain_bert.flags:
#                                its weights at a lower rate; configs/demo_<task>_bert.flags where
#                                a fine-tune needs its own): every pretrained layer kept, ITM
#                                alone (unmasked) for the first 400 steps (issue #34); the
#                                demo data is prepared with its vocabulary
#   RETRIEVAL_TEXT=description   rank the prepared texts instead of the product names (titles)
#   EVAL_SPLIT=development       evaluate on the split for tuning decisions instead of validation
#   TASKS="retrieval caption"    the downstream tasks to run (default: all four)
#   NO_PRETRAIN=1                fine-tune from random weights instead (the "not pre-trained" baseline)
#   PRETRAIN_FLAGS="--masking=random"   more pre-training flags (e.g. other data or masking)
#   RETRIEVAL_FLAGS="--itc_weight=1"    more retrieval fine-tuning flags
# A retrieval run with an ITC head is also scored on the full gallery: ITC alone, its top 20
# re-ranked by the ITM margin, and fused (margin + 20 x cosine). Every command run is listed in
# runs/demo_eval<suffix>/commands.txt.
#   RECIPE=paper                 the paper's ITM training instead of the demo pipeline's (issue #33:
#                                configs/demo_pretrain.flags, the quick start's pre-training;
#                                negatives in the input pipeline, same subcategory in retrieval,
#                                binary loss, no ITC); its folders get _paper
#   SUFFIX=_x                    suffix of every run folder (default: from the variables above)
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${SEED:-0}"
tasks="${TASKS:-retrieval category subcategory caption}"
retrieval_text="${RETRIEVAL_TEXT:-name}"
eval_split="${EVAL_SPLIT:-validation}"
# Pre-training does not depend on the retrieval text, so runs that differ only in it share one.
default_suffix=""
[[ -n "${BERT_INIT:-}" ]] && default_suffix+="_bert"
[[ -n "${RECIPE:-}" ]] && default_suffix+="_${RECIPE}"
[[ "$seed" != 0 ]] && default_suffix+="_seed${seed}"
pretrain_suffix="${SUFFIX-$default_suffix}"
[[ "$retrieval_text" != name ]] && default_suffix+="_${retrieval_text}"
suffix="${SUFFIX-$default_suffix}"
out="runs/demo_eval${suffix}"
[[ "${NO_PRETRAIN:-0}" == 1 ]] && out="runs/demo_eval_scratch${suffix}"
[[ "$eval_split" != validation ]] && out+="_${eval_split}"
mkdir -p "$out"
: > "$out/commands.txt"
run() {  # runs a command and records it in $out/commands.txt
  printf '%q ' "$@" >> "$out/commands.txt"
  echo >> "$out/commands.txt"
  "$@"
}
# The pre-training: ITM groups ranked (configs/demo_pretrain_matching.flags), or the paper's
# pipeline pairs (configs/demo_pretrain.flags, the README's quick start), each in its own folder.
pretrain_flagfile=configs/demo_pretrain_matching.flags
pretrain_dir="runs/demo_pretrain_matching${pretrain_suffix}"
case "${RECIPE:-}" in
  "") recipe_retrieval=() ;;
  paper) pretrain_flagfile=configs/demo_pretrain.flags
         pretrain_dir="runs/demo_pretrain${pretrain_suffix}"
         recipe_retrieval=(--negatives_per_positive=0 --itm_loss=binary --nomined_negatives
                           --itc_weight=0 --negative_same_subcategory=1 --train_steps=600
                           --checkpoint_every=200 --eval_every=200) ;;
  *) echo "RECIPE=${RECIPE} is not a recipe; use paper (or leave it unset)." >&2; exit 2 ;;
esac
read -r -a pretrain_flags <<< "${PRETRAIN_FLAGS:-}"
if [[ -n "${BERT_INIT:-}" ]]; then
  pretrain_flagfile=configs/demo_pretrain_bert.flags
  pretrain_dir="runs/demo_pretrain${pretrain_suffix}"
  pretrain_flags+=("--bert_init=${BERT_INIT}")
fi
init=(--init_checkpoint="$pretrain_dir")
if [[ "${NO_PRETRAIN:-0}" == 1 ]]; then
  suffix="_scratch${suffix}"
  # The same word-pretrained small patch CNN as the pre-training run has (same data and seed).
  run python tools/pretrain_patch_cnn.py --train_data=workdir/demo/prepared/train \
      --output="runs/demo_patch_cnn_words_seed${seed}.h5" --seed="$seed"
  init=(--init_checkpoint= --patch_cnn=small
        --patch_cnn_weights="runs/demo_patch_cnn_words_seed${seed}.h5"
        --hidden_size=128 --num_layers=3 --num_heads=4 --intermediate_size=512)
else
  run python train.py --flagfile="$pretrain_flagfile" --model_dir="$pretrain_dir" \
      --seed="$seed" ${pretrain_flags[@]+"${pretrain_flags[@]}"}
fi
finetune_flagfile() {  # task -> its flag file (a pretrained-BERT start has its own rates)
  if [[ -n "${BERT_INIT:-}" && -f "configs/demo_${1}_bert.flags" ]]; then
    echo "configs/demo_${1}_bert.flags"
  else
    echo "configs/demo_${1}.flags"
  fi
}
read -r -a retrieval_flags <<< "${RETRIEVAL_FLAGS:-}"
retrieval_flags=(${recipe_retrieval[@]+"${recipe_retrieval[@]}"} ${retrieval_flags[@]+"${retrieval_flags[@]}"})
for task in $tasks; do
  extra=()
  [[ "$task" == retrieval ]] && extra=(${retrieval_flags[@]+"${retrieval_flags[@]}"})
  run python train.py --flagfile="$(finetune_flagfile "$task")" "${init[@]}" --seed="$seed" \
      --retrieval_text="$retrieval_text" --model_dir="runs/demo_${task}${suffix}" \
      ${extra[@]+"${extra[@]}"}
done
evaluate() {  # task, checkpoint, [name, more evaluate.py flags]
  local task="$1" checkpoint="$2" name="${3:-$1}"
  run python evaluate.py --task="$task" --checkpoint="$checkpoint" --eval_data=demo \
      --demo_dir=workdir/demo --demo_split="$eval_split" --output_json="$out/$name.json" \
      --summary_dir="$out/tensorboard" --index_file="runs/demo_draws_${eval_split}.json" \
      --num_draws=2 "${@:4}"
}
for task in $tasks; do
  case "$task" in
    retrieval)
      for direction in itr tir; do
        evaluate "$direction" "runs/demo_retrieval${suffix}"
        if python -c "import sys; from kaleido import config; sys.exit(not config.load(
            'runs/demo_retrieval${suffix}').task.has_contrastive_head)"; then
          full=(--protocol=full --index_file="runs/demo_draws_${eval_split}_full.json")
          evaluate "$direction" "runs/demo_retrieval${suffix}" "full_itc_$direction" "${full[@]}" --rerank=0
          evaluate "$direction" "runs/demo_retrieval${suffix}" "full_rerank20_$direction" "${full[@]}" --rerank=20
          evaluate "$direction" "runs/demo_retrieval${suffix}" "full_fused20_$direction" "${full[@]}" --rerank=20 --fusion_weight=20
        fi
      done ;;
    *) evaluate "$task" "runs/demo_${task}${suffix}" ;;
  esac
done
# Pre-training ITM on the development split with the paper's random negatives (the run's own
# held-out folder: the demo's development split, prepared with the run's vocabulary).
if [[ "${NO_PRETRAIN:-0}" != 1 ]]; then
  run python tools/pretraining_itm.py --run="$pretrain_dir" \
      --output_json="$out/pretraining_itm.json"
fi
