"""Shared fixtures: tiny random models of each supported architecture and the three ProPETL variants."""

import copy
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import propetl_adapters  # noqa: E402,F401  (registers configs, applies patches)
from transformers import BertConfig, GPT2Config, LlamaConfig, MistralConfig, RobertaConfig, T5Config  # noqa: E402

# Small but complete configs of each variant (defaults of the paper are checked in test_configuration).
VARIANTS = {
    "proadapter": "proadapter[reduction_factor=8]",
    "prolora": "prolora[r=4,alpha=6]",
    "proprefix": "proprefix[prefix_length=6,bottleneck_size=16]",
}

TINY_CONFIGS = {
    "bert": lambda: BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=37, max_position_embeddings=64),
    "roberta": lambda: RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                     intermediate_size=37, max_position_embeddings=70, pad_token_id=1),
    "t5": lambda: T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2,
                           num_heads=4, decoder_start_token_id=0, pad_token_id=0),
}

# Decoder language models (ProLoRA only); grouped-query attention so k/v are narrower than q.
DECODER_CONFIGS = {
    "llama": lambda: LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                 pad_token_id=0),
    "mistral": lambda: MistralConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                     pad_token_id=0),
    "gpt2": lambda: GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0),
}


def tiny_config(arch: str):
    return copy.deepcopy({**TINY_CONFIGS, **DECODER_CONFIGS}[arch]())


def build_adapter_model(arch: str, adapter_config: str, name: str = "task", head: bool = True, seed: int = 0):
    """A tiny AdapterModel with one ProPETL adapter (and a head) set up for training."""
    from adapters import AutoAdapterModel
    torch.manual_seed(seed)
    model = AutoAdapterModel.from_config(tiny_config(arch))
    model.add_adapter(name, config=adapter_config)
    if head:
        if arch == "t5":
            model.add_seq2seq_lm_head(name)
        else:
            model.add_classification_head(name, num_labels=2)
    model.train_adapter(name)
    return model


def model_inputs(arch: str, batch: int = 3, length: int = 7, seed: int = 123) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, 99, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, -2:] = 0
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if arch == "t5":
        inputs["decoder_input_ids"] = torch.randint(2, 99, (batch, 4), generator=generator)
    return inputs


def model_output(model, inputs) -> torch.Tensor:
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out[0]


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    return request.param


@pytest.fixture(params=list(TINY_CONFIGS))
def arch(request):
    return request.param


@pytest.fixture(scope="session", autouse=True)
def offline_environment():
    """No test may reach the network."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    for key in old:
        os.environ[key] = "1"
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
