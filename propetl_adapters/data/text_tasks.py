"""Text-to-text tasks for T5: the 8 GLUE tasks, XSum and WMT16 Ro-En.

Each example becomes ``{"source": ..., "target": ...}``. Scoring decodes the generated text:
a GLUE prediction that is not one of the task's label words counts as wrong (it is replaced by
a class other than the gold one); an STS-B prediction that is not a number becomes -1.0, outside
the 0-5 range, so it can only lower the correlation.
"""

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .metrics import compute_glue_metrics
from .glue import TASK_NAMES, GlueTask, get_task

INVALID_STSB = -1.0


@dataclass(frozen=True)
class TextTask:
    name: str
    metric_names: Tuple[str, ...]
    to_text: Callable[[dict], Dict[str, str]]
    score: Callable[[List[str], List[str]], Dict[str, float]]
    glue: Optional[GlueTask] = None
    metric_packages: Tuple[Tuple[str, str], ...] = ()  # (module, pip package) that ``score`` imports


def missing_metric_packages(tasks: Sequence[TextTask]) -> List[str]:
    """The pip packages the tasks' scoring needs that cannot be imported here (checked before training,
    so that a run does not stop at its first evaluation)."""
    missing = []
    for task in tasks:
        for module, package in task.metric_packages:
            try:
                importlib.import_module(module)
            except ImportError:
                if package not in missing:
                    missing.append(package)
    return missing


def _glue_source(task: GlueTask, row: dict) -> str:
    parts = [task.name]
    for column, key in zip(task.hf_text_columns, ("sentence1", "sentence2")):
        if row.get(key) is not None:
            parts.append(f"{column}: {row[key]}")
    return " ".join(parts)


def stsb_target(score: float) -> str:
    """STS-B scores rounded to the nearest 0.2, as text ("3.8")."""
    return f"{round(float(score) * 5) / 5:.1f}"


def _glue_row_to_text(task: GlueTask) -> Callable[[dict], Dict[str, str]]:
    def to_text(row: dict) -> Dict[str, str]:
        if "source" in row and "target" in row:
            return {"source": row["source"], "target": row["target"]}
        label = row["label"]
        target = stsb_target(label) if task.is_regression else task.label_names[int(label)]
        return {"source": _glue_source(task, row), "target": target}
    return to_text


def _compact(text: str) -> str:
    """Text without whitespace: tokenizers may decode 'not_entailment' as 'not _ entailment' or '3.8' as '3. 8'."""
    return "".join(text.split())


def decode_glue(task: GlueTask, predictions: Sequence[str], targets: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Class ids (or STS-B numbers) of predicted and gold texts; invalid predictions are made wrong."""
    if task.is_regression:
        def number(text: str) -> float:
            try:
                return float(_compact(text))
            except ValueError:
                return INVALID_STSB
        return np.array([number(p) for p in predictions]), np.array([float(_compact(t)) for t in targets])
    words = {w: i for i, w in enumerate(task.label_names)}
    gold = np.array([words[_compact(t)] for t in targets])
    predicted = np.array([words.get(_compact(p), (g + 1) % len(words)) for p, g in zip(predictions, gold)])
    return predicted, gold


def _glue_scorer(task: GlueTask):
    def score(predictions: List[str], targets: List[str]) -> Dict[str, float]:
        predicted, gold = decode_glue(task, predictions, targets)
        return compute_glue_metrics(task, predicted, gold)
    return score


def rouge2(predictions: List[str], targets: List[str]) -> Dict[str, float]:
    from rouge_score import rouge_scorer  # scoring extra: imported when scored (missing_metric_packages names it)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(t, p) for p, t in zip(predictions, targets)]
    return {name: 100.0 * float(np.mean([s[name].fmeasure for s in scores])) for name in ("rouge2", "rouge1", "rougeL")}


def bleu(predictions: List[str], targets: List[str]) -> Dict[str, float]:
    import sacrebleu  # scoring extra: imported when scored (missing_metric_packages names it)
    return {"bleu": float(sacrebleu.corpus_bleu(predictions, [targets]).score)}


def _xsum_to_text(row: dict) -> Dict[str, str]:
    if "source" in row:
        return {"source": row["source"], "target": row["target"]}
    return {"source": "summarize: " + row["document"], "target": row["summary"]}


def _wmt_to_text(row: dict) -> Dict[str, str]:
    if "source" in row:
        return {"source": row["source"], "target": row["target"]}
    pair = row.get("translation", row)
    return {"source": "translate Romanian to English: " + pair["ro"], "target": pair["en"]}


TEXT_TASKS: Dict[str, TextTask] = {
    **{name: TextTask(name, tuple(get_task(name).metrics), _glue_row_to_text(get_task(name)),
                      _glue_scorer(get_task(name)), glue=get_task(name)) for name in TASK_NAMES},
    # The metric listed first is the one reported (and the one selection averages with the rest).
    "xsum": TextTask("xsum", ("rouge2",), _xsum_to_text, rouge2, metric_packages=(("rouge_score", "rouge-score"),)),
    "wmt16_ro_en": TextTask("wmt16_ro_en", ("bleu",), _wmt_to_text, bleu,
                            metric_packages=(("sacrebleu", "sacrebleu"),)),
}


def get_text_task(name: str) -> TextTask:
    if name not in TEXT_TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TEXT_TASKS)}")
    return TEXT_TASKS[name]
