#!/usr/bin/env bash
# ProLoRA (METHOD=pro, default) or plain LoRA (METHOD=plain, r 32, alpha 32) on GLUE; see common.sh.
#   DENSITY   kept fraction k of the masks (0.1 as in the reference scripts; the paper's text says 0.5)
#   MASK_LR   learning rate of the mask scores (3e-2)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# prolora defaults: r 32 on the query and value projections, alpha 48.
run_pro_or_plain ProLoRA prolora 0.1 3e-2 lora "lora[r=32,alpha=32]"
