#!/usr/bin/env bash
# Full fine-tuning baseline on GLUE: every parameter (layer norms included) is trained; see common.sh.
# LR defaults to 2e-5, a usual RoBERTa fine-tuning rate: the protocol's 1e-4 is the PETL modules'
# rate (set LR=1e-4 to use it here too). Checkpoints are deleted once a run is DONE (each holds a
# whole model and its optimizer state); the best model stays in <run>/model.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -z "${METHOD:-}" || "${METHOD}" == full ]] || die "run_finetune.sh has one method; METHOD must be unset or 'full', got '$METHOD'"
[[ -z "${DENSITY:-}${MASK_LR:-}" ]] || die "DENSITY and MASK_LR do not apply to full fine-tuning"
run_grid full_finetuning "${LR:-2e-5}" --delete_checkpoints
