"""How much the [CLS] vector of each layer varies across inputs, with a trained adapter and without it.

A head that reads [CLS] can only learn if [CLS] depends on the input. Prefix tuning adds the same prefix
tokens to every input; when they take over [CLS]'s attention, the vector barely moves from one input to the
next. This prints, per layer, the mean over hidden units of the standard deviation across a few fixed
sentence pairs, with the run's adapter active and with no adapter, and the share of [CLS]'s attention that
goes to the prefix tokens.

    python -m benchmarks.cls_spread outputs/evidence/fixed/stsb/proprefix/seed42
    python -m benchmarks.cls_spread outputs/evidence/fixed/stsb/proprefix/seed42 --init_seed 42

With ``--init_seed`` the adapter is a fresh one of the run's config (initialised after seeding torch with that
seed) instead of the trained one: the spread before training, to tell what training did from what the
method does at its initialisation.
"""

import argparse
import json
import os

import torch
from adapters import AutoAdapterModel
from transformers import AutoTokenizer

import propetl_adapters  # noqa: F401  (registers the ProPETL configs)

PAIRS = [("A man is playing a guitar.", "A man plays the guitar."),
         ("A dog runs in the park.", "The stock market fell sharply."),
         ("Kids are playing outside.", "Children play in the yard."),
         ("A woman cuts an onion.", "A plane is taking off.")]


def cls_spread(model, batch) -> tuple:
    """Per layer: the [CLS] spread across the pairs, and the share of [CLS]'s attention (mean over pairs and
    heads) that goes to positions before the input's own tokens (prefix tokens; 0 without a prefix). Layer 0 is
    the embeddings, which attend to nothing."""
    with torch.no_grad():
        output = model(**batch, output_hidden_states=True, output_attentions=True)
    spread = [layer[:, 0].std(dim=0).mean().item() for layer in output.hidden_states]
    length = batch["input_ids"].shape[1]
    on_prefix = [0.0] + [weights[:, :, 0, :weights.shape[-1] - length].sum(-1).mean().item()
                         for weights in output.attentions]
    return spread, on_prefix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run_glue.py output folder (run_arguments.json and adapter/)")
    parser.add_argument("--init_seed", type=int, default=None,
                        help="measure a freshly initialised adapter of the run's config (seeded so) instead")
    args = parser.parse_args(argv)
    with open(os.path.join(args.run_dir, "run_arguments.json"), encoding="utf-8") as handle:
        model_path = json.load(handle)["ModelArguments"]["model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoAdapterModel.from_pretrained(model_path, attn_implementation="eager").eval()  # returns weights
    batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], return_tensors="pt", padding=True)
    adapter_dir = os.path.join(args.run_dir, "adapter")
    if args.init_seed is None:
        name = model.load_adapter(adapter_dir)
    else:
        with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as handle:
            saved = json.load(handle)
        torch.manual_seed(args.init_seed)
        name = saved["name"]
        model.add_adapter(name, config=saved["config"])
    model.set_active_adapters(name)
    with_adapter, on_prefix = cls_spread(model, batch)
    model.set_active_adapters(None)
    without, _ = cls_spread(model, batch)
    kind = "trained" if args.init_seed is None else "untrained"
    print(f"layer | [CLS] spread with the {kind} adapter | without | [CLS] attention on prefix tokens")
    for layer, (a, b, share) in enumerate(zip(with_adapter, without, on_prefix)):
        print(f"{layer} | {a:.4f} | {b:.4f} | {share:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
