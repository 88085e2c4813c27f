"""Where a ProPETL training step spends its time: torch.profiler over a few steps, top operators by CPU time.

    python -m benchmarks.profile_step --geometry minilm --config "proadapter[reduction_factor=12,tasks=a|b|c]"
"""

import argparse
import sys

import torch

from benchmarks.run import batch, build, train_step_fn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--geometry", default="minilm")
    parser.add_argument("--config", default="proadapter[reduction_factor=12]")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)
    model = build(args.geometry, args.config)
    step = train_step_fn(model, args.config, batch(model, args.batch, args.length))
    step()  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()
    table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
    print(table)
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mask_ops = sum(e.self_cpu_time_total for e in events if e.key in ("aten::topk", "aten::abs", "aten::zeros_like",
                                                                      "aten::index_put_", "aten::rsub"))
    print(f"mask-related operators (topk, abs, zeros_like, index_put_, rsub): {100 * mask_ops / total:.2f} % "
          "of self CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
