#!/usr/bin/env bash
# The ablation of SPEC §2 (paper Table 4) on GLUE tasks: ProAdapter, only-share, only-mask and random mask,
# parameter-matched by bit-level storage (propetl_adapters/ablation.py). See common.sh for MODEL, TASKS,
# SEEDS, OUTPUT_DIR, GLUE_DIR, LR, EPOCHS, EXTRA_ARGS, DRY_RUN.
#   REDUCTION_FACTOR  ProAdapter's reduction factor (12)
#   DENSITY           ProAdapter's kept fraction k (0.5)
#   MASK_LR           learning rate of the mask scores (3e-3)
#   ONLY_MASK_MATCH   bn: lower only-mask's bottleneck to match BLS (default); k: keep it and use k / L
#   SETTINGS          which of proadapter only_share only_mask random_mask to run (default: all four), e.g. more
#                     seeds of the one setting whose verdict they decide
# The matched sizes and their BLS are written to $OUTPUT_DIR/ablation/sizes.json.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
REDUCTION_FACTOR="${REDUCTION_FACTOR:-12}"
DENSITY="${DENSITY:-0.5}"
MASK_LR="${MASK_LR:-3e-3}"
ONLY_MASK_MATCH="${ONLY_MASK_MATCH:-bn}"
check_number REDUCTION_FACTOR "$REDUCTION_FACTOR"
check_number DENSITY "$DENSITY"
check_number MASK_LR "$MASK_LR"
[[ "$ONLY_MASK_MATCH" == bn || "$ONLY_MASK_MATCH" == k ]] || die "ONLY_MASK_MATCH must be bn or k, got '$ONLY_MASK_MATCH'"
SETTINGS="${SETTINGS:-proadapter only_share only_mask random_mask}"
for setting in $SETTINGS; do
    case "$setting" in
        proadapter | only_share | only_mask | random_mask) ;;
        *) die "SETTINGS: unknown '$setting'; expected proadapter, only_share, only_mask or random_mask" ;;
    esac
done

sizes="$("$PYTHON" -m propetl_adapters.ablation --model "$MODEL" --reduction_factor "$REDUCTION_FACTOR" \
    --density "$DENSITY" --only_mask_match "$ONLY_MASK_MATCH")" || die "cannot read the geometry of MODEL=$MODEL"
if [[ "$DRY_RUN" != 1 ]]; then
    mkdir -p "$OUTPUT_DIR/ablation"
    printf '%s\n' "$sizes" > "$OUTPUT_DIR/ablation/sizes.json"
fi
echo "$sizes"
for setting in $SETTINGS; do
    config="$(printf '%s' "$sizes" | "$PYTHON" -c "import json, sys; print(json.load(sys.stdin)['settings']['$setting']['config'])")"
    run_grid "ablation/$setting" "${LR:-1e-4}" --train_adapter --adapter_config "$config" --mask_learning_rate "$MASK_LR"
done
