"""Training glue: AdamW parameter groups that give masks their own learning rate and weight decay."""

from typing import Dict, Iterable, List, Optional

import torch
from adapters import AdapterTrainer, Seq2SeqAdapterTrainer
from transformers.trainer_pt_utils import get_parameter_names

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


def propetl_parameter_groups(model: torch.nn.Module, weight_decay: float, mask_learning_rate: Optional[float] = None,
                             mask_weight_decay: float = 0.0, learning_rate: Optional[float] = None) -> List[Dict]:
    """Up to four AdamW groups: (non-mask | mask) x (decay | no decay). Biases and layer norms never decay.

    ``mask_learning_rate=None`` keeps the masks at the main learning rate.
    """
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
    def __init__(self, *args, mask_learning_rate: Optional[float] = None, mask_weight_decay: float = 0.0, **kwargs):
        self.mask_learning_rate = mask_learning_rate
        self.mask_weight_decay = mask_weight_decay
        super().__init__(*args, **kwargs)

    def create_optimizer(self):
        if self.optimizer is None:
            groups = propetl_parameter_groups(self.model, self.args.weight_decay, self.mask_learning_rate,
                                              self.mask_weight_decay)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


class ProPETLTrainer(_MaskLearningRateMixin, AdapterTrainer):
    """AdapterTrainer whose optimizer has separate mask groups (``mask_learning_rate``, ``mask_weight_decay``)."""


class ProPETLSeq2SeqTrainer(_MaskLearningRateMixin, Seq2SeqAdapterTrainer):
    """Seq2SeqAdapterTrainer with the same mask groups."""


def trainable_parameter_count(parameters: Iterable[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in {id(p): p for p in parameters if p.requires_grad}.values())
