"""Worked example of serving ProLoRA with PEFT: storage and inference time, measured in one run.

    python -m benchmarks.serving_example            # the run recorded in docs/serving.md
    python -m benchmarks.serving_example --quick    # a smaller model and fewer steps (smoke run)

1. A tiny random Llama (no download) gets a hybrid multi-task ProLoRA over 3 synthetic tasks and is trained
   for a few steps with mixed-task batches (task t: the next token is the current one shifted by t + 1).
2. ``save_adapter`` stores it in N bytes; ``export_peft_lora`` writes one PEFT LoRA folder per task of
   M bytes each; each folder is loaded with ``PeftModel.from_pretrained`` and its logits are compared
   with ours.
3. Inference time of one forward pass (batch x length tokens): PEFT with the exported LoRA (unmerged, as
   LoRA servers run it) against our frozen and merged model (``freeze_masks`` + ``merge_adapter``),
   alternated for ``--repeats`` rounds; the ratio is median(PEFT) / median(ours).
"""

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import propetl_adapters  # noqa: E402,F401  (registers the configs)
from propetl_adapters import active_task, freeze_masks  # noqa: E402
from propetl_adapters.export import export_peft_lora  # noqa: E402

TASKS = ["shift1", "shift2", "shift3"]
CONFIG = "prolora[r=8,alpha=12,density=0.3,task_density=0.3,init_weights='bert',tasks=shift1|shift2|shift3]"


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)


def task_batch(vocab: int, batch: int, length: int, generator: torch.Generator):
    """Rows of all three tasks; task t continues each sequence by adding t + 1 (mod vocab) per token."""
    task_ids = torch.arange(batch) % len(TASKS)
    start = torch.randint(0, vocab, (batch, 1), generator=generator)
    steps = torch.arange(length).unsqueeze(0) * (task_ids.unsqueeze(1) + 1)
    return (start + steps) % vocab, task_ids


def median_seconds(run, repeats: int, runs: dict) -> None:
    """Alternate every model for ``repeats`` rounds (drifts in load hit all of them); medians in ``runs``."""
    times = {name: [] for name in run}
    for _ in range(repeats):
        for name, call in run.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        runs[name] = {"median_ms": 1000 * statistics.median(values), "min_ms": 1000 * min(values),
                      "max_ms": 1000 * max(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller model, fewer steps and rounds")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.batch, args.length = 3, 2, 2, 8
    torch.set_num_threads(args.threads)

    import adapters
    from transformers import LlamaConfig, LlamaForCausalLM

    size = (64, 2, 172) if args.quick else (256, 4, 688)
    config = LlamaConfig(vocab_size=512, hidden_size=size[0], num_hidden_layers=size[1], intermediate_size=size[2],
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    base = copy.deepcopy(model).eval()
    adapters.init(model)
    model.add_adapter("tasks", config=CONFIG)
    model.train_adapter("tasks")
    trainable = [p for n, p in model.named_parameters() if ".loras." in n or "shared_parameters." in n]
    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(args.steps):
        input_ids, task_ids = task_batch(config.vocab_size, 12, 32, generator)
        loss = model(input_ids=input_ids, labels=input_ids, task_ids=task_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()

    with tempfile.TemporaryDirectory(prefix="serving_example_") as work:
        return measure(args, model, base, config, losses, work, generator)


def measure(args, model, base, config, losses, work: str, generator: torch.Generator) -> int:
    from peft import PeftModel

    stored = os.path.join(work, "prolora")
    model.save_adapter(stored, "tasks", with_head=False)  # the LM head is the base model's, untouched
    written = export_peft_lora(model, "tasks", os.path.join(work, "peft"), base_model_name_or_path="tiny-llama")
    exported = {task: folder_bytes(folder) for task, folder in written.items()}

    input_ids = torch.randint(0, config.vocab_size, (args.batch, args.length), generator=generator)
    result = {"model": f"Llama d={config.hidden_size} L={config.num_hidden_layers} ffn={config.intermediate_size} "
                       f"vocab={config.vocab_size}, {sum(p.numel() for p in base.parameters()):,} parameters",
              "config": CONFIG, "train_loss_first_last": [losses[0], losses[-1]] if losses else None,
              "stored_bytes": folder_bytes(stored), "exported_bytes": exported,
              "batch": [args.batch, args.length], "threads": args.threads, "max_abs_logit_diff": {}, "time": {}}
    for task, folder in written.items():
        served = PeftModel.from_pretrained(copy.deepcopy(base), folder).eval()
        frozen = freeze_masks(copy.deepcopy(model), "tasks", task=task)
        frozen.merge_adapter("tasks")
        frozen.eval()
        with torch.no_grad(), active_task(task):
            ours = model(input_ids=input_ids).logits
        with torch.no_grad():
            result["max_abs_logit_diff"][task] = {
                "peft_vs_ours": (served(input_ids=input_ids).logits - ours).abs().max().item(),
                "frozen_merged_vs_ours": (frozen(input_ids=input_ids).logits - ours).abs().max().item()}
        if task == TASKS[0]:
            with torch.no_grad():
                median_seconds({"PEFT, exported LoRA (unmerged)": lambda: served(input_ids=input_ids),
                                "ours, frozen and merged": lambda: frozen(input_ids=input_ids),
                                "base model, no adapter": lambda: base(input_ids=input_ids)},
                               args.repeats, result["time"])
    timing = result["time"]
    result["ratio_peft_over_frozen_merged"] = (timing["PEFT, exported LoRA (unmerged)"]["median_ms"]
                                               / timing["ours, frozen and merged"]["median_ms"])
    print(json.dumps(result, indent=2))
    total = sum(exported.values())
    print(f"stored ProLoRA (3 tasks): {result['stored_bytes']:,} bytes; exported PEFT LoRAs: "
          + " + ".join(f"{b:,}" for b in exported.values()) + f" = {total:,} bytes "
          f"({total / result['stored_bytes']:.2f} x the stored ProLoRA)")
    print(f"forward pass {args.batch} x {args.length}: PEFT {timing['PEFT, exported LoRA (unmerged)']['median_ms']:.1f}"
          f" ms, ours frozen+merged {timing['ours, frozen and merged']['median_ms']:.1f} ms, ratio "
          f"{result['ratio_peft_over_frozen_merged']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
