#!/usr/bin/env bash
# ProAdapter (METHOD=pro, default) or the plain Pfeiffer adapter (METHOD=plain) on GLUE; see common.sh.
#   DENSITY   kept fraction k of the masks (0.5, as in the reference scripts and the paper's text)
#   MASK_LR   learning rate of the mask scores (3e-3)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The plain adapter has bottleneck 64 on d = 768 (reduction factor 12), the ProAdapter prototype's geometry.
run_pro_or_plain ProAdapter proadapter 0.5 3e-3 seq_bn "seq_bn[reduction_factor=12]"
