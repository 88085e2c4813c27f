#!/usr/bin/env bash
# Score against storage (paper Figure 3): the plain adapter and ProAdapter at several bottleneck sizes.
#   RUNNER=glue (default): run_glue.py on GLUE TASKS; see common.sh for MODEL, TASKS, SEEDS, OUTPUT_DIR, ...
#   RUNNER=seq2seq: the configs/<task>/{adapter,propetl_adapter}_bn<size>.json of run_seq2seq.py, for
#                   TASKS in xsum wmt16_ro_en (default both), SEEDS (42); sizes from SIZES.
#   SIZES     bottleneck sizes (glue default: 4 8 16 32 64; seq2seq default: 8 32 64 256)
#   MASK_LR   learning rate of ProAdapter's mask scores (glue: 3e-3)
# glue runs go to $OUTPUT_DIR/storage/{seq_bn,proadapter}_bn<size>/<task>/seed<seed>.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNNER="${RUNNER:-glue}"
case "$RUNNER" in
    seq2seq)
        SIZES="${SIZES:-8 32 64 256}" T5_TASKS="${TASKS:-xsum wmt16_ro_en}" exec bash "$SCRIPT_DIR/run_t5_generation.sh" ;;
    glue) ;;
    *) echo "$(basename "$0"): error: RUNNER must be glue or seq2seq, got '$RUNNER'" >&2; exit 2 ;;
esac
source "$SCRIPT_DIR/common.sh"
SIZES="${SIZES:-4 8 16 32 64}"
MASK_LR="${MASK_LR:-3e-3}"
check_number MASK_LR "$MASK_LR"
hidden="$("$PYTHON" -m propetl_adapters.ablation --model "$MODEL" \
    | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["hidden"])')" || die "cannot read the hidden size of MODEL=$MODEL"
for size in $SIZES; do
    is_uint "$size" && (( size > 0 && size < hidden )) || die "SIZES: '$size' is not a bottleneck in [1, $hidden)"
    factor="$("$PYTHON" -c "from propetl_adapters.ablation import reduction_factor_for; print(f'{reduction_factor_for($hidden, $size):.6f}')")"
    run_grid "storage/seq_bn_bn$size" "${LR:-1e-4}" --train_adapter --adapter_config "seq_bn[reduction_factor=$factor]"
    run_grid "storage/proadapter_bn$size" "${LR:-1e-4}" --train_adapter \
        --adapter_config "proadapter[reduction_factor=$factor]" --mask_learning_rate "$MASK_LR"
done
