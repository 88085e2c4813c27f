#!/usr/bin/env bash
# ProLoRA (METHOD=pro, default) or plain LoRA (METHOD=plain, r 32, alpha 32) on GLUE; see common.sh.
#   DENSITY   kept fraction k of the masks (0.1 as in the reference scripts; the paper's text says 0.5)
#   MASK_LR   learning rate of the mask scores (3e-2)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

METHOD="${METHOD:-pro}"
case "$METHOD" in
    pro)
        DENSITY="${DENSITY:-0.1}"
        MASK_LR="${MASK_LR:-3e-2}"
        check_number DENSITY "$DENSITY"
        check_number MASK_LR "$MASK_LR"
        # prolora defaults: r 32 on the query and value projections, alpha 48.
        run_grid prolora "${LR:-1e-4}" --train_adapter --adapter_config prolora \
            --density "$DENSITY" --mask_learning_rate "$MASK_LR"
        ;;
    plain)
        [[ -z "${DENSITY:-}${MASK_LR:-}" ]] || die "DENSITY and MASK_LR apply to METHOD=pro only"
        run_grid lora "${LR:-1e-4}" --train_adapter --adapter_config "lora[r=32,alpha=32]"
        ;;
    *)
        die "METHOD must be 'pro' (ProLoRA) or 'plain' (lora), got '$METHOD'"
        ;;
esac
