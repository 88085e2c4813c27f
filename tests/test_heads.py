"""The mean-pooled classification head: what it reads, and that it saves and reloads like a built-in head."""

import pytest
import torch
from adapters import AutoAdapterModel

from propetl_adapters.heads import MeanPooledClassificationHead, add_classification_head, mean_over_tokens
from tests.conftest import tiny_config


def _model(pooling, head_seed=0, adapter=None):
    """The same tiny BERT every time; the head (and adapter) drawn with ``head_seed``."""
    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(tiny_config("bert"))
    torch.manual_seed(head_seed)
    if adapter:
        model.add_adapter("task", config=adapter)
        model.set_active_adapters("task")
    add_classification_head(model, "task", num_labels=3, layers=1, pooling=pooling, id2label={0: "a", 1: "b", 2: "c"})
    return model.eval()


IDS = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])


def test_mean_over_tokens_ignores_masked_positions():
    hidden = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    expected = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    assert torch.equal(mean_over_tokens(hidden, mask), expected)
    assert torch.equal(mean_over_tokens(hidden, None), hidden.mean(1))


def test_the_head_reads_the_mean_of_the_real_tokens_so_padding_changes_nothing():
    model = _model("mean")
    with torch.no_grad():
        padded = model(input_ids=IDS, attention_mask=MASK).logits
        alone = model(input_ids=IDS[:1, :4], attention_mask=MASK[:1, :4]).logits
        base = model.base_model(input_ids=IDS, attention_mask=MASK, return_dict=True)
        hidden = base.last_hidden_state
        by_hand = model.heads["task"](base, cls_output=mean_over_tokens(hidden, MASK), return_dict=True).logits
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(padded, by_hand)
    with torch.no_grad():
        first_token = model.heads["task"](base, cls_output=hidden[:, 0], return_dict=True).logits
    assert not torch.allclose(padded, first_token)  # it does not read the first token


@pytest.mark.parametrize("with_adapter", [False, True])
def test_a_saved_mean_pooled_head_reloads_on_a_fresh_model(tmp_path, with_adapter):
    trained = _model("mean", head_seed=1, adapter="seq_bn[reduction_factor=8]" if with_adapter else None)
    if with_adapter:
        trained.save_adapter(str(tmp_path), "task", with_head=True)
    else:
        trained.save_head(str(tmp_path), "task")
    fresh = _model("cls", head_seed=2)
    fresh.delete_head("task")
    if with_adapter:
        fresh.load_adapter(str(tmp_path), set_active=True)
    else:
        fresh.load_head(str(tmp_path))
    assert isinstance(fresh.heads["task"], MeanPooledClassificationHead)
    assert fresh.heads["task"].config["label2id"] == {"a": 0, "b": 1, "c": 2}
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=IDS, attention_mask=MASK).logits,
                                   trained(input_ids=IDS, attention_mask=MASK).logits)


def test_first_token_pooling_is_adapterhubs_own_head_and_bad_pooling_is_refused():
    assert type(_model("cls").heads["task"]).__name__ == "ClassificationHead"
    with pytest.raises(ValueError, match="pooling 'max': expected one of cls, mean"):
        _model("max")
