"""Temperature sampling of one-task batches (SPEC §3) and the text-to-text decoding rules."""

import numpy as np
import pytest

from propetl_adapters.multitask_training import TaskBatchSampler, temperature_probabilities, trainer_choice
from propetl_adapters.seq2seq.tasks import INVALID_STSB, decode_glue, get_text_task, stsb_target


def test_temperature_probabilities_follow_the_formula():
    sizes = [100, 900]
    assert np.allclose(temperature_probabilities(sizes, 1.0), [0.1, 0.9])
    expected = np.array([0.1, 0.9]) ** 0.1
    assert np.allclose(temperature_probabilities(sizes, 10.0), expected / expected.sum())
    with pytest.raises(ValueError, match="at least one"):
        temperature_probabilities([5, 0], 10.0)


def test_every_batch_holds_one_task_and_tasks_are_drawn_by_probability():
    sizes = [30, 270]
    sampler = TaskBatchSampler(sizes, batch_size=4, temperature=1.0, seed=0)
    offsets = [0, 30]
    counts = [0, 0]
    seen = set()
    for _ in range(40):
        for batch in sampler:
            tasks = {0 if i < 30 else 1 for i in batch}
            assert len(batch) == 4 and len(tasks) == 1
            counts[tasks.pop()] += 1
            seen.update(batch)
    assert len(sampler) == 75
    share = counts[0] / sum(counts)
    assert abs(share - 0.1) < 0.02, share
    assert seen == set(range(300)), "every example is visited"
    assert offsets == sampler.offsets.tolist()


def test_sampler_streams_are_reproducible_and_differ_between_ranks_and_epochs():
    def batches(**kwargs):
        sampler = TaskBatchSampler([10, 10], batch_size=2, seed=3, **kwargs)
        return list(sampler), list(sampler)
    first, second = batches()
    assert first == batches()[0] and first != second
    assert batches(rank=1, world_size=2)[0] != batches(rank=0, world_size=2)[0]


def test_invalid_generated_labels_count_as_wrong():
    rte = get_text_task("rte").glue
    predicted, gold = decode_glue(rte, ["entailment", "not _ entailment", "maybe"],
                                  ["entailment", "not_entailment", "entailment"])
    assert gold.tolist() == [0, 1, 0] and predicted.tolist() == [0, 1, 1]
    stsb = get_text_task("stsb").glue
    predicted, gold = decode_glue(stsb, ["3. 8", "n/a"], ["3.8", "1.0"])
    assert predicted.tolist() == [3.8, INVALID_STSB] and gold.tolist() == [3.8, 1.0]
    assert stsb_target(3.77) == "3.8" and stsb_target(0.09) == "0.0"


def test_text_to_text_rows():
    row = get_text_task("mrpc").to_text({"sentence1": "a b", "sentence2": "c", "label": 1})
    assert row == {"source": "mrpc sentence1: a b sentence2: c", "target": "equivalent"}
    assert get_text_task("wmt16_ro_en").to_text({"translation": {"ro": "x", "en": "y"}}) == {
        "source": "translate Romanian to English: x", "target": "y"}
    with pytest.raises(ValueError, match="unknown task"):
        get_text_task("squad")


def test_generation_metrics_have_known_values():
    from propetl_adapters.seq2seq.tasks import bleu, rouge2
    same = ["the cat sat on the mat", "a dog ran"]
    assert rouge2(same, same)["rouge2"] == pytest.approx(100.0)
    assert bleu(same, same)["bleu"] == pytest.approx(100.0)
    # one of the two bigrams of "a dog ran" matches "a dog sat": ROUGE-2 F = 0.5
    assert rouge2(["a dog sat"], ["a dog ran"])["rouge2"] == pytest.approx(50.0)
    assert bleu(["completely different words here"], ["the cat sat on the mat"])["bleu"] < 1.0


def test_mask_learning_rate_is_recorded_as_the_numbers_give_it():
    assert 3e-4 * 10 != 0.003  # the plain product carries binary noise
    trainer, kwargs = trainer_choice(object(), "full", "adapter", 3e-4, 10.0)
    assert trainer == "adapter" and kwargs["mask_learning_rate"] == 0.003
    assert trainer_choice(None, "full", "adapter", 3e-4, 10.0) == ("full", {})
