# Shared part of run_adapter.sh, run_lora.sh, run_prefix.sh and run_finetune.sh (sourced, not run).
#
# Reproduces the single-task GLUE protocol of the ProPETL paper (Table 1): roberta-base, eight GLUE
# tasks, seeds 42 43 44, AdamW lr 1e-4, weight decay 0.1, batch 128, max length 128, linear schedule
# with 10 % warm-up, the paper's epochs per task, evaluation every epoch and the best checkpoint by
# the task's main metric. One run per (task, seed) goes to $OUTPUT_DIR/<method>/<task>/seed<seed>.
#
# Environment overrides (all optional):
#   MODEL             pre-trained model                        (roberta-base)
#   TASKS             space-separated GLUE tasks               (rte mrpc stsb cola sst2 qnli qqp mnli)
#   SEEDS             space-separated training seeds           (42 43 44)
#   OUTPUT_DIR        results root                             (<repo>/outputs/glue)
#   GLUE_DIR          offline GLUE folder (<Task>/train.tsv, dev.tsv); unset: download with `datasets`
#   LR                learning rate of the PETL module         (1e-4; run_finetune.sh: 2e-5)
#   BATCH_SIZE        effective batch size                     (128)
#   GRAD_ACCUM        gradient accumulation steps              (1)
#   PER_DEVICE_BATCH  batch per device; default BATCH_SIZE / (GRAD_ACCUM x NPROC). The product
#                     PER_DEVICE_BATCH x GRAD_ACCUM x NPROC must equal BATCH_SIZE.
#   EVAL_BATCH        evaluation batch per device              (256)
#   NPROC             processes (GPUs) per run; > 1 launches torch.distributed.run  (1)
#   PYTHON            python interpreter                       (python3)
#   EPOCHS            train this many epochs instead of the paper's epochs per task
#   EXTRA_ARGS        more run_glue.py flags, split on whitespace (e.g. "--bf16 --logging_steps 20")
#   DRY_RUN=1         print the commands, run nothing
#
# A run whose folder holds a DONE marker is skipped; an interrupted run (checkpoints, no DONE)
# resumes from its last checkpoint. The first failing run stops the script (no retries).
# The marker's name is DONE_FILE of propetl_adapters/experiments/run_folder.py, which writes it;
# tests/scripts/test_shell_scripts.py checks that this script and that constant agree.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME="$(basename "$0")"
ALL_TASKS="rte mrpc stsb cola sst2 qnli qqp mnli"

die() {
    echo "$SCRIPT_NAME: error: $*" >&2
    exit 2
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_number() { [[ "$1" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; }

MODEL="${MODEL:-roberta-base}"
TASKS="${TASKS:-$ALL_TASKS}"
SEEDS="${SEEDS:-42 43 44}"
OUTPUT_DIR="${OUTPUT_DIR:-$REPO_ROOT/outputs/glue}"
GLUE_DIR="${GLUE_DIR:-}"
BATCH_SIZE="${BATCH_SIZE:-128}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
NPROC="${NPROC:-1}"
EVAL_BATCH="${EVAL_BATCH:-256}"
PYTHON="${PYTHON:-python3}"
EXTRA_ARGS="${EXTRA_ARGS:-}"
DRY_RUN="${DRY_RUN:-0}"

[[ -n "$MODEL" ]] || die "MODEL is empty; expected a model name or folder (e.g. roberta-base)"
[[ -n "${TASKS// /}" ]] || die "TASKS is empty; expected some of: $ALL_TASKS"
for task in $TASKS; do
    [[ " $ALL_TASKS " == *" $task "* ]] || die "TASKS: unknown task '$task'; expected some of: $ALL_TASKS"
done
[[ -n "${SEEDS// /}" ]] || die "SEEDS is empty; expected integers such as '42 43 44'"
for seed in $SEEDS; do
    is_uint "$seed" || die "SEEDS: '$seed' is not a non-negative integer"
done
[[ "$DRY_RUN" == 0 || "$DRY_RUN" == 1 ]] || die "DRY_RUN must be 0 or 1, got '$DRY_RUN'"
[[ -n "$OUTPUT_DIR" ]] || die "OUTPUT_DIR is empty"
if [[ -n "$GLUE_DIR" && ! -d "$GLUE_DIR" ]]; then
    die "GLUE_DIR=$GLUE_DIR is not a folder; expected a GLUE data folder with <Task>/train.tsv and dev.tsv"
fi
for name in BATCH_SIZE GRAD_ACCUM NPROC EVAL_BATCH; do
    value="${!name}"
    { is_uint "$value" && (( value > 0 )); } || die "$name must be a positive integer, got '$value'"
done
if [[ -z "${PER_DEVICE_BATCH:-}" ]]; then
    (( BATCH_SIZE % (GRAD_ACCUM * NPROC) == 0 )) \
        || die "BATCH_SIZE=$BATCH_SIZE is not divisible by GRAD_ACCUM x NPROC = $((GRAD_ACCUM * NPROC)); set PER_DEVICE_BATCH"
    PER_DEVICE_BATCH=$(( BATCH_SIZE / (GRAD_ACCUM * NPROC) ))
fi
{ is_uint "$PER_DEVICE_BATCH" && (( PER_DEVICE_BATCH > 0 )); } \
    || die "PER_DEVICE_BATCH must be a positive integer, got '$PER_DEVICE_BATCH'"
if (( PER_DEVICE_BATCH * GRAD_ACCUM * NPROC != BATCH_SIZE )); then
    die "PER_DEVICE_BATCH x GRAD_ACCUM x NPROC = $PER_DEVICE_BATCH x $GRAD_ACCUM x $NPROC = $((PER_DEVICE_BATCH * GRAD_ACCUM * NPROC)), expected BATCH_SIZE=$BATCH_SIZE"
fi
read -r -a EXTRA <<< "$EXTRA_ARGS"
EPOCH_FLAGS=(--paper_epochs)
if [[ -n "${EPOCHS:-}" ]]; then
    is_number "$EPOCHS" || die "EPOCHS must be a positive number, got '$EPOCHS'"
    EPOCH_FLAGS=(--num_train_epochs "$EPOCHS")
fi

if (( NPROC > 1 )); then
    LAUNCH=("$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" "$REPO_ROOT/run_glue.py")
else
    LAUNCH=("$PYTHON" "$REPO_ROOT/run_glue.py")
fi

# check_number NAME VALUE: VALUE must be a positive decimal number
check_number() {
    is_number "$2" || die "$1 must be a positive number, got '$2'"
}

# run_grid LABEL LR [run_glue.py flags of the method...]: one run per task and seed.
run_grid() {
    local label="$1" lr="$2"
    shift 2
    check_number LR "$lr"
    local done_count=0 run_count=0 task seed dir
    echo "== $label: tasks [$TASKS], seeds [$SEEDS], model $MODEL, lr $lr, batch $PER_DEVICE_BATCH x $GRAD_ACCUM x $NPROC"
    for task in $TASKS; do
        for seed in $SEEDS; do
            dir="$OUTPUT_DIR/$label/$task/seed$seed"
            if [[ -f "$dir/DONE" ]]; then
                echo "[skip] $dir (DONE)"
                done_count=$((done_count + 1))
                continue
            fi
            local cmd=("${LAUNCH[@]}"
                --model_name_or_path "$MODEL" --task_name "$task")
            if [[ -n "$GLUE_DIR" ]]; then
                cmd+=(--glue_dir "$GLUE_DIR")
            fi
            cmd+=(--output_dir "$dir" --seed "$seed" --split_seed 42
                --learning_rate "$lr" --weight_decay 0.1 --warmup_ratio 0.1 --lr_scheduler_type linear
                --max_seq_length 128 "${EPOCH_FLAGS[@]}"
                --per_device_train_batch_size "$PER_DEVICE_BATCH" --gradient_accumulation_steps "$GRAD_ACCUM"
                --per_device_eval_batch_size "$EVAL_BATCH"
                --eval_strategy epoch --save_strategy epoch --save_total_limit 1
                --logging_steps 50 --report_to none
                "$@" "${EXTRA[@]}")
            echo "+ $(printf '%q ' "${cmd[@]}")"
            run_count=$((run_count + 1))
            if [[ "$DRY_RUN" == 1 ]]; then
                continue
            fi
            "${cmd[@]}" || {
                local rc=$?
                echo "$SCRIPT_NAME: run failed with exit code $rc: $dir" >&2
                echo "$SCRIPT_NAME: fix the cause and rerun; DONE runs are skipped, this one resumes from its last checkpoint" >&2
                exit "$rc"
            }
        done
    done
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "== $label: $run_count run(s) to do, $done_count already DONE (dry run: nothing was run)"
    else
        echo "== $label: $run_count run(s) finished, $done_count already DONE"
    fi
}

# run_pro_or_plain PRO_LABEL PRO_NAME DEFAULT_DENSITY DEFAULT_MASK_LR PLAIN_LABEL PLAIN_CONFIG:
# the METHOD switch of run_adapter.sh / run_lora.sh / run_prefix.sh. METHOD=pro (default) runs the
# ProPETL variant with DENSITY and MASK_LR; METHOD=plain runs its plain counterpart.
run_pro_or_plain() {
    local pro_label="$1" pro_name="$2" default_density="$3" default_mask_lr="$4" plain_label="$5" plain_config="$6"
    METHOD="${METHOD:-pro}"
    case "$METHOD" in
        pro)
            DENSITY="${DENSITY:-$default_density}"
            MASK_LR="${MASK_LR:-$default_mask_lr}"
            check_number DENSITY "$DENSITY"
            check_number MASK_LR "$MASK_LR"
            run_grid "$pro_name" "${LR:-1e-4}" --train_adapter --adapter_config "$pro_name" \
                --density "$DENSITY" --mask_learning_rate "$MASK_LR"
            ;;
        plain)
            [[ -z "${DENSITY:-}${MASK_LR:-}" ]] || die "DENSITY and MASK_LR apply to METHOD=pro only"
            run_grid "$plain_label" "${LR:-1e-4}" --train_adapter --adapter_config "$plain_config"
            ;;
        *)
            die "METHOD must be 'pro' ($pro_label) or 'plain' ($plain_label), got '$METHOD'"
            ;;
    esac
}
