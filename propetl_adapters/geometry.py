"""Configs of the paper's backbones, for storage counts and benchmarks without downloading weights."""

from transformers import BertConfig, PretrainedConfig, RobertaConfig, T5Config

GEOMETRIES = {
    "roberta-base": lambda: RobertaConfig(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5),
    "t5-base": lambda: T5Config(
        vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12,
        relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu", tie_word_embeddings=True,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
    "bert-base-uncased": lambda: BertConfig(),
}


def geometry_config(name: str) -> PretrainedConfig:
    """A fresh config for one of GEOMETRIES (random weights are built from it, nothing is downloaded)."""
    if name not in GEOMETRIES:
        raise ValueError(f"Unknown geometry {name!r}; known: {sorted(GEOMETRIES)}.")
    return GEOMETRIES[name]()
