#!/usr/bin/env bash
# Figure 3: XSum and WMT16 Ro-En on t5-base, adapter and ProAdapter at bottleneck 8, 32, 64 and 256,
# see seq2seq_common.sh. T5_TASKS (xsum wmt16_ro_en) and SIZES (8 32 64 256) narrow the grid (T5_TASKS, not
# TASKS, so that a TASKS exported for the GLUE scripts does not reach it).
source "$(dirname "${BASH_SOURCE[0]}")/seq2seq_common.sh"
T5_TASKS="${T5_TASKS:-xsum wmt16_ro_en}"
SIZES="${SIZES:-8 32 64 256}"
configs=()
if [[ -n "${CONFIGS:-}" ]]; then
    read -r -a configs <<< "$CONFIGS"
else
    for task in $T5_TASKS; do
        [[ "$task" == xsum || "$task" == wmt16_ro_en ]] || die "T5_TASKS: unknown '$task'; expected xsum or wmt16_ro_en"
        for size in $SIZES; do
            for method in propetl_adapter adapter; do
                configs+=("$REPO_ROOT/configs/$task/${method}_bn$size.json")
            done
        done
    done
fi
run_configs "${configs[@]}"
