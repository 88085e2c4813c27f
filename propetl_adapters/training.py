"""Training glue: AdamW parameter groups that give masks their own learning rate and weight decay."""

from typing import Dict, Iterable, List, Optional, Tuple

import torch
from adapters import AdapterTrainer, Seq2SeqAdapterTrainer
from transformers.trainer_pt_utils import get_parameter_names

from .configuration import is_propetl_config
from .masks import TensorMask

NO_DECAY_TYPES = (torch.nn.LayerNorm,)


def mask_score_parameters(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """Score tensors of every learned mask in the model (each once)."""
    seen, scores = set(), []
    for module in model.modules():
        if isinstance(module, TensorMask) and module.learned and id(module.scores) not in seen:
            seen.add(id(module.scores))
            scores.append(module.scores)
    return scores


def reference_mask_learning_rate(model: torch.nn.Module, learning_rate: float) -> float:
    """``learning_rate`` times the reference scripts' mask/prototype ratio of the model's ProPETL adapters
    (ProAdapter 30, ProLoRA 300, ProPrefix 1); ValueError when adapters with different ratios train together."""
    configs = getattr(model, "adapters_config", None)
    ratios = {}
    for name in configs.adapters if configs is not None else ():
        config = configs.get(name)
        if is_propetl_config(config):
            ratios[type(config).__name__] = config.reference_mask_lr_ratio
    if len(set(ratios.values())) > 1:
        raise ValueError(f"adapters {sorted(ratios)} have different reference mask learning rates "
                         f"({ratios} x the learning rate); pass mask_learning_rate explicitly.")
    return learning_rate * next(iter(ratios.values()), 1.0)


def propetl_parameter_groups(model: torch.nn.Module, weight_decay: float, mask_learning_rate: Optional[float] = None,
                             mask_weight_decay: Optional[float] = None,
                             learning_rate: Optional[float] = None) -> List[Dict]:
    """Up to four AdamW groups: (non-mask | mask) x (decay | no decay). Biases and layer norms never decay.

    ``mask_learning_rate=None`` keeps the masks at the main learning rate; ``mask_weight_decay=None`` decays the
    scores like every other weight (``weight_decay``), as the reference does.
    """
    if mask_weight_decay is None:
        mask_weight_decay = weight_decay
    decay_names = set(get_parameter_names(model, list(NO_DECAY_TYPES)))
    decay_names = {n for n in decay_names if not n.endswith("bias")}
    mask_ids = {id(p) for p in mask_score_parameters(model)}
    buckets: Dict[tuple, list] = {}
    seen = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        is_mask = id(param) in mask_ids
        decays = name in decay_names
        buckets.setdefault((is_mask, decays), []).append(param)
    groups = []
    for (is_mask, decays), params in sorted(buckets.items()):
        group = {"params": params, "weight_decay": (mask_weight_decay if is_mask else weight_decay) if decays else 0.0}
        lr = mask_learning_rate if is_mask else learning_rate
        if lr is not None:
            group["lr"] = lr
        groups.append(group)
    return groups


class _MaskLearningRateMixin:
    """``mask_learning_rate=None``: the reference ratio times ``args.learning_rate`` (``reference_mask_learning_rate``);
    ``mask_weight_decay=None``: ``args.weight_decay``."""

    def __init__(self, *args, mask_learning_rate: Optional[float] = None, mask_weight_decay: Optional[float] = None,
                 **kwargs):
        self.mask_learning_rate = mask_learning_rate
        self.mask_weight_decay = mask_weight_decay
        super().__init__(*args, **kwargs)

    def mask_rates(self) -> Tuple[Optional[float], Optional[float]]:
        """(learning rate, weight decay) the optimizer gives the mask scores, defaults resolved; without masks,
        (the given learning rate, None)."""
        if not mask_score_parameters(self.model):
            return self.mask_learning_rate, None
        learning_rate = self.mask_learning_rate
        if learning_rate is None:
            learning_rate = reference_mask_learning_rate(self.model, self.args.learning_rate)
        weight_decay = self.args.weight_decay if self.mask_weight_decay is None else self.mask_weight_decay
        return learning_rate, weight_decay

    def create_optimizer(self):
        if self.optimizer is None:
            groups = propetl_parameter_groups(self.model, self.args.weight_decay, *self.mask_rates())
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


class ProPETLTrainer(_MaskLearningRateMixin, AdapterTrainer):
    """AdapterTrainer whose optimizer has separate mask groups (``mask_learning_rate``, ``mask_weight_decay``)."""


class ProPETLSeq2SeqTrainer(_MaskLearningRateMixin, Seq2SeqAdapterTrainer):
    """Seq2SeqAdapterTrainer with the same mask groups."""


def trainable_parameter_count(parameters: Iterable[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in {id(p): p for p in parameters if p.requires_grad}.values())
