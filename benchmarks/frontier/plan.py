"""The methods of the frontier, their learning-rate grids, and the plan of runs (no training here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

# The protocol of docs/results.md (STS-B 2 epochs; MRPC 5, as scripts/evidence_minilm.sh).
TASK_EPOCHS = {"stsb": 2, "mrpc": 5}
DEFAULT_TASKS = ("stsb", "mrpc")
DEFAULT_SEEDS = (42, 43, 44)
MASK_LR_RATIO = 10  # ProPETL mask lr = 10 x lr, as in docs/results.md (lr 1e-3, mask lr 1e-2)
PROTOCOL_LR = 1e-3
DEFAULT_POOLING = "cls"  # the protocol's head reads the first token; "mean" (--pooling) reads the token mean
PEFT_TARGETS = ("query", "value")  # BERT's q/v projections, as the published GLUE runs of the PEFT methods

FAMILIES = ("propetl", "adapterhub", "peft")


@dataclass(frozen=True)
class Method:
    """One point of the frontier: a method at one size.

    ``config``: an AdapterHub config string (propetl, adapterhub) or a PEFT config class name (peft), with
    ``peft_kwargs``. ``head_learning_rate`` None: the head trains at the method's lr (one optimizer rate, as
    run_glue.py); else the head's own rate. ``weight_decay`` None: the protocol's weight decay on the method's
    weights; else this one (the head always keeps the protocol's)."""

    name: str
    family: str
    config: str
    lr_grid: Tuple[float, ...]
    peft_kwargs: Tuple[Tuple[str, object], ...] = ()
    head_learning_rate: Optional[float] = None
    weight_decay: Optional[float] = None
    # PEFT saving formats that are measured, the first one counted (e.g. VeRA without its projections).
    storage_variants: Tuple[str, ...] = ("as_saved",)
    note: str = ""
    label: str = field(default="", compare=False)


PROTOCOL_GRID = (5e-4, 1e-3, 2e-3)
# The large-rate methods train their few values at 10-100x LoRA's rate (VeRA paper: 4e-3..1e-2 on RoBERTa-base,
# larger on small models; FourierFT paper: 5e-2..1e-1); their head keeps the protocol's rate, as those papers
# give the classifier its own smaller rate, and their values are not decayed (AdamW's decay scales with the
# rate: 0.1 x 1e-1 would shrink a FourierFT spectrum by 1 % per step).
LARGE_RATE = dict(head_learning_rate=PROTOCOL_LR, weight_decay=0.0)

METHODS: Dict[str, Method] = {m.name: m for m in [
    Method("proadapter_bn32_k0.5", "propetl", "proadapter[reduction_factor=12]", PROTOCOL_GRID,
           label="ProAdapter bn 32, k 0.5"),
    Method("proadapter_bn32_k0.1", "propetl", "proadapter[reduction_factor=12,density=0.1]", PROTOCOL_GRID,
           label="ProAdapter bn 32, k 0.1"),
    Method("proadapter_bn8_k0.5", "propetl", "proadapter[reduction_factor=48]", PROTOCOL_GRID,
           label="ProAdapter bn 8, k 0.5"),
    Method("prolora_r32", "propetl", "prolora[r=32,alpha=48]", PROTOCOL_GRID, label="ProLoRA r 32, k 0.1"),
    Method("prolora_r8", "propetl", "prolora[r=8,alpha=12]", PROTOCOL_GRID, label="ProLoRA r 8, k 0.1"),
    Method("proprefix_p64", "propetl", "proprefix[prefix_length=64,bottleneck_size=512]", PROTOCOL_GRID,
           label="ProPrefix 64, k 0.1"),
    Method("proprefix_p16", "propetl", "proprefix[prefix_length=16,bottleneck_size=512]", PROTOCOL_GRID,
           label="ProPrefix 16, k 0.1"),
    Method("seq_bn_bn32", "adapterhub", "seq_bn[reduction_factor=12]", PROTOCOL_GRID, label="Adapter bn 32"),
    Method("lora_r32", "adapterhub", "lora[r=32,alpha=48]", PROTOCOL_GRID, label="LoRA r 32 (AdapterHub)"),
    Method("peft_lora_r8", "peft", "LoraConfig", PROTOCOL_GRID,
           (("r", 8), ("lora_alpha", 8), ("target_modules", PEFT_TARGETS)), label="LoRA r 8 (PEFT)"),
    Method("peft_vera_r1024", "peft", "VeraConfig", (1e-2, 2e-2, 4e-2),
           (("r", 1024), ("target_modules", PEFT_TARGETS), ("save_projection", True)), **LARGE_RATE,
           storage_variants=("without_projection", "with_projection"), label="VeRA r 1024 (PEFT)",
           note="projections rebuilt from projection_prng_key when saved without them"),
    # Bank of 90 vectors of length d/3 (RoBERTa-base: 256 = 768/3; MiniLM: 128 = 384/3), rank 4, top-2.
    Method("peft_vblora", "peft", "VBLoRAConfig", (5e-3, 1e-2, 2e-2),
           (("r", 4), ("num_vectors", 90), ("vector_length", 128), ("topk", 2), ("target_modules", PEFT_TARGETS)),
           **LARGE_RATE, storage_variants=("topk", "full"), label="VB-LoRA (PEFT)",
           note="top-k format: per sub-vector the top-k bank indices and k-1 weights, plus the bank"),
    Method("peft_fourierft_n1000", "peft", "FourierFTConfig", (2e-2, 5e-2, 1e-1),
           (("n_frequency", 1000), ("scaling", 150.0), ("target_modules", PEFT_TARGETS)), **LARGE_RATE,
           label="FourierFT n 1000 (PEFT)", note="spectral entries' locations rebuilt from random_loc_seed"),
]}

# Vector length of VB-LoRA must divide the hidden size; the tiny test models rewrite it (see peft_kwargs_for).
VBLORA_SUBVECTORS = 3


@dataclass(frozen=True)
class Run:
    task: str
    method: str
    learning_rate: float
    seed: int
    budget: str  # "e2" (epochs) or "s3" (max steps): part of the id, so budgets never share a record

    @property
    def run_id(self) -> str:
        return f"{self.task}__{self.method}__lr{self.learning_rate:g}__seed{self.seed}__{self.budget}"


def budget_tag(task: str, epochs: Optional[float], max_steps: Optional[int], max_train_samples: Optional[int] = None,
               max_eval_samples: Optional[int] = None, pooling: str = DEFAULT_POOLING) -> str:
    """``e<epochs>`` or ``s<steps>``, ``_n<train>x<eval>`` when the examples are limited (smoke checks), and
    ``_<pooling>`` for a head other than the protocol's [CLS] head, so that runs of two heads never share a record."""
    tag = f"s{max_steps}" if max_steps else f"e{epochs if epochs is not None else TASK_EPOCHS[task]:g}"
    if max_train_samples or max_eval_samples:
        tag += f"_n{max_train_samples or 'all'}x{max_eval_samples or 'all'}"
    if pooling != DEFAULT_POOLING:
        tag += f"_{pooling}"
    return tag


def resolve_methods(names: Optional[Sequence[str]]) -> List[str]:
    """Method names from exact names, family names (propetl, adapterhub, peft) or 'all' (the default)."""
    if not names:
        return list(METHODS)
    chosen: List[str] = []
    for name in names:
        if name == "all":
            found = list(METHODS)
        elif name in FAMILIES:
            found = [m.name for m in METHODS.values() if m.family == name]
        elif name in METHODS:
            found = [name]
        else:
            raise ValueError(f"--methods: unknown method {name!r}; expected 'all', a family ({', '.join(FAMILIES)}) "
                             f"or one of {', '.join(METHODS)}")
        chosen += [m for m in found if m not in chosen]
    return chosen


def parse_lr_grid(items: Optional[Sequence[str]], methods: Sequence[str]) -> Dict[str, Tuple[float, ...]]:
    """Each method's grid: its default, overridden by ``METHOD=LR[,LR...]`` items or by ``LR[,LR...]`` for all."""
    grids = {m: METHODS[m].lr_grid for m in methods}
    for item in items or ():
        target, _, values = item.rpartition("=")
        try:
            rates = tuple(float(v) for v in values.split(",") if v)
        except ValueError:
            raise ValueError(f"--lr_grid {item!r}: expected METHOD=LR[,LR...] or LR[,LR...] with numbers") from None
        if not rates or any(r <= 0 for r in rates):
            raise ValueError(f"--lr_grid {item!r}: expected one or more positive learning rates")
        if target and target not in METHODS:
            raise ValueError(f"--lr_grid {item!r}: unknown method {target!r}; expected one of {', '.join(METHODS)}")
        for method in ([target] if target else methods):
            if method in grids:
                grids[method] = rates
    return grids


def build_plan(tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
               grids: Dict[str, Tuple[float, ...]], epochs: Optional[float] = None, max_steps: Optional[int] = None,
               search_seeds: Optional[Sequence[int]] = None, max_train_samples: Optional[int] = None,
               max_eval_samples: Optional[int] = None,
               pooling: str = DEFAULT_POOLING) -> Tuple[List[Run], List[Tuple[str, str, int]]]:
    """The runs to make now, and the (task, method, seed) runs whose lr waits for the search.

    Without ``search_seeds`` every seed runs the whole grid. With them, only those seeds run the grid; the
    other seeds run the lr chosen on the search seeds' validation scores (``select_lr``)."""
    unknown = [t for t in tasks if t not in TASK_EPOCHS and epochs is None and not max_steps]
    if unknown:
        raise ValueError(f"--tasks {unknown}: no protocol budget for it; pass --epochs or --max_steps "
                         f"(known: {', '.join(TASK_EPOCHS)})")
    search = list(seeds) if search_seeds is None else [s for s in seeds if s in search_seeds]
    if search_seeds is not None and not search:
        raise ValueError(f"--search_seeds {list(search_seeds)}: none of them is among --seeds {list(seeds)}")
    runs, pending = [], []
    for task in tasks:
        budget = budget_tag(task, epochs, max_steps, max_train_samples, max_eval_samples, pooling)
        for seed in seeds:
            for method in methods:
                if seed in search:
                    runs += [Run(task, method, lr, seed, budget) for lr in grids[method]]
                else:
                    pending.append((task, method, seed))
    return runs, pending
