#!/usr/bin/env bash
# Table 2: multi-task GLUE on t5-base (8 tasks, 20k steps, temperature sampling), see seq2seq_common.sh.
# METHOD picks the configs: propetl (hybrid ProAdapter, bottleneck 64 and 6), adapter (bottleneck 64 and 6),
# finetune, hyperformer (Hyperformer++, Hyperformer and Adapter†), single (one adapter per task and single-task
# fine-tuning, 16 runs), or all (default: every multi-task config).
source "$(dirname "${BASH_SOURCE[0]}")/seq2seq_common.sh"
METHOD="${METHOD:-all}"
case "$METHOD" in
    propetl) default=(propetl_adapter_reduction12 propetl_adapter_bn6) ;;
    adapter) default=(adapter_reduction12 adapter_bn6) ;;
    finetune) default=(finetune) ;;
    hyperformer) default=(hyperformer++ hyperformer adapter_dagger) ;;
    single) default=() ;;
    all) default=(propetl_adapter_reduction12 propetl_adapter_bn6 adapter_reduction12 adapter_bn6 finetune
                  hyperformer++ hyperformer adapter_dagger) ;;
    *) die "METHOD must be propetl, adapter, finetune, hyperformer, single or all, got '$METHOD'" ;;
esac
if [[ -n "${CONFIGS:-}" ]]; then
    read -r -a configs <<< "$CONFIGS"
elif [[ "$METHOD" == single ]]; then
    configs=("$REPO_ROOT"/configs/glue_single/*.json)
else
    configs=("${default[@]/#/$REPO_ROOT/configs/glue/}")
    configs=("${configs[@]/%/.json}")
fi
run_configs "${configs[@]}"
