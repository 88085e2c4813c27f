"""The run_glue.py flags of the MiniLM evidence protocol (docs/results.md, the `run` function of
scripts/evidence_minilm.sh), shared by the frontier harness and the parallel GPU grid: each adds its own budget
(epochs or steps), precision and method flags."""

from typing import List


def protocol_flags(model: str, task: str, glue_dir: str, seed: int, output_dir: str, learning_rate: str = "1e-3",
                   train_batch_size: int = 32, eval_batch_size: int = 64, max_seq_length: int = 128) -> List[str]:
    """AdamW at ``learning_rate`` with weight decay 0.1 and 10 % warm-up, evaluation and checkpoint every epoch
    (the best kept, the others deleted at the end), a one-layer head, no tracking, no progress bars."""
    return ["--model_name_or_path", model, "--task_name", task, "--glue_dir", glue_dir,
            "--learning_rate", learning_rate, "--weight_decay", "0.1", "--warmup_ratio", "0.1",
            "--per_device_train_batch_size", str(train_batch_size),
            "--per_device_eval_batch_size", str(eval_batch_size), "--max_seq_length", str(max_seq_length),
            "--seed", str(seed), "--eval_strategy", "epoch", "--save_strategy", "epoch", "--head_layers", "1",
            "--output_dir", output_dir, "--report_to", "none", "--delete_checkpoints", "--disable_tqdm", "true"]
