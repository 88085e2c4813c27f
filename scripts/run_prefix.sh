#!/usr/bin/env bash
# ProPrefix (METHOD=pro, default) or plain prefix tuning (METHOD=plain, prefix length 64) on GLUE;
# see common.sh.
#   DENSITY   kept fraction k of the masks (0.1 as in the reference scripts; the paper's text says 0.5)
#   MASK_LR   learning rate of the mask scores (1e-4)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

METHOD="${METHOD:-pro}"
case "$METHOD" in
    pro)
        DENSITY="${DENSITY:-0.1}"
        MASK_LR="${MASK_LR:-1e-4}"
        check_number DENSITY "$DENSITY"
        check_number MASK_LR "$MASK_LR"
        # proprefix defaults: prefix length 64, reparametrisation MLP with 512 hidden units.
        run_grid proprefix "${LR:-1e-4}" --train_adapter --adapter_config proprefix \
            --density "$DENSITY" --mask_learning_rate "$MASK_LR"
        ;;
    plain)
        [[ -z "${DENSITY:-}${MASK_LR:-}" ]] || die "DENSITY and MASK_LR apply to METHOD=pro only"
        run_grid prefix_tuning "${LR:-1e-4}" --train_adapter --adapter_config "prefix_tuning[prefix_length=64]"
        ;;
    *)
        die "METHOD must be 'pro' (ProPrefix) or 'plain' (prefix_tuning), got '$METHOD'"
        ;;
esac
