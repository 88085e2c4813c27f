#!/usr/bin/env bash
# The sparsity sweep (paper Figure 4): k = 0.1, 0.2, ..., 1.0 for each ProPETL variant on GLUE tasks.
# See common.sh for MODEL, TASKS, SEEDS, OUTPUT_DIR, GLUE_DIR, LR, EPOCHS, EXTRA_ARGS, DRY_RUN.
#   VARIANTS   proadapter prolora proprefix (default: all three)
#   DENSITIES  the k values (0.1 ... 1.0)
#   MASK_LR    learning rate of the mask scores (default: each variant's reference value)
# Runs go to $OUTPUT_DIR/sparsity/<variant>_k<k>/<task>/seed<seed>.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
VARIANTS="${VARIANTS:-proadapter prolora proprefix}"
DENSITIES="${DENSITIES:-0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0}"
for density in $DENSITIES; do
    is_number "$density" && awk "BEGIN{exit !($density > 0 && $density <= 1)}" \
        || die "DENSITIES: '$density' is not a number in (0, 1]"
done
for variant in $VARIANTS; do
    case "$variant" in
        proadapter) default_mask_lr=3e-3 ;;
        prolora) default_mask_lr=3e-2 ;;
        proprefix) default_mask_lr=1e-4 ;;
        *) die "VARIANTS: unknown '$variant'; expected proadapter, prolora or proprefix" ;;
    esac
    for density in $DENSITIES; do
        run_grid "sparsity/${variant}_k$density" "${LR:-1e-4}" --train_adapter --adapter_config "$variant" \
            --density "$density" --mask_learning_rate "${MASK_LR:-$default_mask_lr}"
    done
done
