"""The text-to-text tasks of T5: rows, decoding of generated labels and the generation metrics."""

import pytest

from propetl_adapters.data.text_tasks import INVALID_STSB, bleu, decode_glue, get_text_task, rouge2, stsb_target


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
    same = ["the cat sat on the mat", "a dog ran"]
    assert rouge2(same, same)["rouge2"] == pytest.approx(100.0)
    assert bleu(same, same)["bleu"] == pytest.approx(100.0)
    # one of the two bigrams of "a dog ran" matches "a dog sat": ROUGE-2 F = 0.5
    assert rouge2(["a dog sat"], ["a dog ran"])["rouge2"] == pytest.approx(50.0)
    assert bleu(["completely different words here"], ["the cat sat on the mat"])["bleu"] < 1.0
