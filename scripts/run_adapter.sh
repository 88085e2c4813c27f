#!/usr/bin/env bash
# ProAdapter (METHOD=pro, default) or the plain Pfeiffer adapter (METHOD=plain) on GLUE; see common.sh.
#   DENSITY   kept fraction k of the masks (0.5, as in the reference scripts and the paper's text)
#   MASK_LR   learning rate of the mask scores (3e-3)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

METHOD="${METHOD:-pro}"
case "$METHOD" in
    pro)
        DENSITY="${DENSITY:-0.5}"
        MASK_LR="${MASK_LR:-3e-3}"
        check_number DENSITY "$DENSITY"
        check_number MASK_LR "$MASK_LR"
        run_grid proadapter "${LR:-1e-4}" --train_adapter --adapter_config proadapter \
            --density "$DENSITY" --mask_learning_rate "$MASK_LR"
        ;;
    plain)
        [[ -z "${DENSITY:-}${MASK_LR:-}" ]] || die "DENSITY and MASK_LR apply to METHOD=pro only"
        # Bottleneck 64 on d = 768 (reduction factor 12), the geometry of the ProAdapter prototype.
        run_grid seq_bn "${LR:-1e-4}" --train_adapter --adapter_config "seq_bn[reduction_factor=12]"
        ;;
    *)
        die "METHOD must be 'pro' (ProAdapter) or 'plain' (seq_bn), got '$METHOD'"
        ;;
esac
