#!/usr/bin/env bash
# ProPrefix (METHOD=pro, default) or plain prefix tuning (METHOD=plain, prefix length 64) on GLUE;
# see common.sh.
#   DENSITY   kept fraction k of the masks (0.1 as in the reference scripts; the paper's text says 0.5)
#   MASK_LR   learning rate of the mask scores (1e-4)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# proprefix defaults: prefix length 64, reparametrisation MLP with 512 hidden units.
run_pro_or_plain ProPrefix proprefix 0.1 1e-4 prefix_tuning "prefix_tuning[prefix_length=64]"
