"""A classification head on the mean of the last hidden states, beside AdapterHub's first-token head.

Sentence encoders such as all-MiniLM-L6-v2 are trained to be read by mean pooling; their first token is
not, and prefix tuning lets it attend mostly to the prefixes, which are the same for every input
(``benchmarks/cls_spread.py``). Reading the mean of the real tokens is the other usual choice.

``import propetl_adapters`` makes a saved mean-pooled head reload on any AdapterHub model
(``patches.py`` registers the type on first use); ``add_classification_head`` adds either kind.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from adapters.heads import ClassificationHead

MEAN_POOLED_HEAD = "mean_pooled_classification"
POOLINGS = ("cls", "mean")


def mean_over_tokens(hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The mean of ``hidden_states`` (batch, tokens, d) over the tokens whose ``attention_mask`` is 1."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MeanPooledClassificationHead(ClassificationHead):
    """AdapterHub's classification head, fed the mean of the real tokens instead of the first token."""

    def forward(self, outputs, cls_output=None, attention_mask=None, return_dict=False, **kwargs):
        if cls_output is None:
            cls_output = mean_over_tokens(outputs[0], attention_mask)
        return super().forward(outputs, cls_output=cls_output, attention_mask=attention_mask,
                               return_dict=return_dict, **kwargs)


def register_heads(model) -> None:
    """Let ``model`` add and load mean-pooled heads (AdapterHub keeps custom head types per model)."""
    model.register_custom_head(MEAN_POOLED_HEAD, MeanPooledClassificationHead)


def add_classification_head(model, name: str, num_labels: int, layers: int, pooling: str = "cls",
                            id2label: Optional[Mapping[int, str]] = None) -> None:
    """Add a classification head reading the first token (``cls``, AdapterHub's) or the token mean (``mean``)."""
    if pooling == "cls":
        model.add_classification_head(name, num_labels=num_labels, layers=layers, id2label=id2label)
    elif pooling == "mean":
        register_heads(model)
        model.add_custom_head(MEAN_POOLED_HEAD, name, num_labels=num_labels, layers=layers, id2label=id2label)
    else:
        raise ValueError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
