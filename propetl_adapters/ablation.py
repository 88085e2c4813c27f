"""Parameter-matched settings of the paper's ablation (SPEC §2, Table 4) for ProAdapter.

With hidden size d, L adapted layers, bottleneck b and kept fraction k, the prototype holds
P(b) = 2·d·b + d + b floats (two projections and their biases) and
- ProAdapter stores 32·P(b) + L·2·d·b bits (one prototype, a 1-bit mask per layer);
- only-share (one shared adapter, no mask) stores 32·P(b') bits: b' is raised until it matches;
- only-mask (one masked adapter per layer, nothing shared) stores L·(32·P(b'') + 2·d·b'') bits: either b''
  is lowered until it matches (``only_mask_match="bn"``), or b stays and k'' = k / L, so the layers together
  use as many distinct trained weights as the one prototype (``only_mask_match="k"``; BLS is then L
  times larger, as the paper's "keep bn, lower k" variant);
- random mask keeps b and k; it stores only the prototype, 32·P(b) bits (its masks are drawn afresh at
  every forward pass, so there is nothing to store for them).

    python -m propetl_adapters.ablation --model MODEL_DIR --reduction_factor 12
"""

import argparse
import json
import sys
from typing import Dict

from transformers import AutoConfig

from .geometry import GEOMETRIES, geometry_config


def prototype_floats(hidden: int, bottleneck: int) -> int:
    return 2 * hidden * bottleneck + hidden + bottleneck


def proadapter_bls(hidden: int, layers: int, bottleneck: int) -> int:
    return 32 * prototype_floats(hidden, bottleneck) + layers * 2 * hidden * bottleneck


def only_share_bls(hidden: int, bottleneck: int) -> int:
    return 32 * prototype_floats(hidden, bottleneck)


def only_mask_bls(hidden: int, layers: int, bottleneck: int) -> int:
    return layers * (32 * prototype_floats(hidden, bottleneck) + 2 * hidden * bottleneck)


def _closest(target: int, bls, limit: int) -> int:
    return min(range(1, limit + 1), key=lambda b: (abs(bls(b) - target), b))


def reduction_factor_for(hidden: int, bottleneck: int) -> float:
    """A reduction factor whose ``int(hidden // factor)`` (AdapterHub's rule) is exactly ``bottleneck``."""
    return hidden / (bottleneck + 0.5)


def matched_settings(hidden: int, layers: int, bottleneck: int, density: float = 0.5,
                     only_mask_match: str = "bn") -> Dict[str, dict]:
    """The four settings with their config strings, bottleneck, k and BLS."""
    if only_mask_match not in ("bn", "k"):
        raise ValueError(f"only_mask_match must be 'bn' or 'k', got {only_mask_match!r}")
    target = proadapter_bls(hidden, layers, bottleneck)
    share_b = _closest(target, lambda b: only_share_bls(hidden, b), 4 * bottleneck + 8)
    if only_mask_match == "bn":
        mask_b, mask_k = _closest(target, lambda b: only_mask_bls(hidden, layers, b), bottleneck), density
    else:
        mask_b, mask_k = bottleneck, density / layers

    def config(b: int, **fields) -> str:
        extra = "".join(f",{k}={v}" for k, v in fields.items())
        return f"proadapter[reduction_factor={reduction_factor_for(hidden, b):.6f}{extra}]"

    return {
        "proadapter": {"config": config(bottleneck, density=density), "bottleneck": bottleneck, "density": density,
                       "bls_bits": target},
        "only_share": {"config": config(share_b, masked=False), "bottleneck": share_b, "density": 1.0,
                       "bls_bits": only_share_bls(hidden, share_b)},
        "only_mask": {"config": config(mask_b, shared=False, density=round(mask_k, 6)), "bottleneck": mask_b,
                      "density": round(mask_k, 6), "bls_bits": only_mask_bls(hidden, layers, mask_b)},
        "random_mask": {"config": config(bottleneck, density=density, random_mask=True), "bottleneck": bottleneck,
                        "density": density, "bls_bits": only_share_bls(hidden, bottleneck)},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m propetl_adapters.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder, hub name or known geometry (roberta-base, t5-base): its "
                                        "hidden size and layer count are read")
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--reduction_factor", type=float, default=12)
    parser.add_argument("--density", type=float, default=0.5)
    parser.add_argument("--only_mask_match", choices=["bn", "k"], default="bn")
    args = parser.parse_args(argv)
    hidden, layers = args.hidden, args.layers
    if args.model:
        config = geometry_config(args.model) if args.model in GEOMETRIES else AutoConfig.from_pretrained(args.model)
        hidden, layers = config.hidden_size, config.num_hidden_layers
    if not hidden or not layers:
        parser.error("pass --model, or --hidden and --layers")
    bottleneck = int(hidden // args.reduction_factor)
    print(json.dumps({"hidden": hidden, "layers": layers, "settings": matched_settings(
        hidden, layers, bottleneck, args.density, args.only_mask_match)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
