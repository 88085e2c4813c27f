"""What the multi-task runners share: the mask learning rate (and its deprecated ratio flag), the trainer and the
command-line entry."""

import logging

import pytest

from propetl_adapters.experiments.common import ExperimentError
from propetl_adapters.experiments.multitask import multitask_main, resolve_mask_learning_rate, trainer_choice


def test_mask_learning_rate_is_recorded_as_the_numbers_give_it():
    assert 3e-4 * 10 != 0.003  # the plain product carries binary noise
    assert resolve_mask_learning_rate(None, None, 3e-4) == 0.003  # the default: 10 x the learning rate
    trainer, kwargs = trainer_choice(object(), "full", "adapter", 0.003)
    assert trainer == "adapter" and kwargs["mask_learning_rate"] == 0.003
    assert trainer_choice(None, "full", "adapter", 0.003) == ("full", {})


def test_mask_learning_rate_flag_is_taken_as_given():
    assert resolve_mask_learning_rate(5e-2, None, 3e-4) == 5e-2
    with pytest.raises(ExperimentError, match="--mask_learning_rate must be positive"):
        resolve_mask_learning_rate(0.0, None, 3e-4)


def test_deprecated_mask_lr_ratio_warns_and_multiplies_the_learning_rate(caplog):
    with caplog.at_level(logging.WARNING, logger="propetl_adapters.experiments.multitask"):
        assert resolve_mask_learning_rate(None, 20.0, 3e-4) == 0.006
    assert "--mask_lr_ratio is deprecated; pass --mask_learning_rate 0.006" in caplog.text
    with pytest.raises(ExperimentError, match="--mask_learning_rate only"):
        resolve_mask_learning_rate(1e-2, 20.0, 3e-4)
    with pytest.raises(ExperimentError, match="--mask_lr_ratio must be positive"):
        resolve_mask_learning_rate(None, -1.0, 3e-4)


def test_the_command_line_entry_prints_the_scores_records_the_command_and_refuses_bad_input(capsys):
    seen = {}

    def run(args, training_args, command_line):
        seen.update(args=args, training_args=training_args, command_line=command_line)
        return {"test_average": 71.234, "test": {"test_rte_score": 60.0, "test_rte_loss": 0.7, "test_cola_score": 82.5}}

    assert multitask_main("run_x.py", ["--a", "1 2"], lambda argv: (argv, "targs"), run) == 0
    assert seen == {"args": ["--a", "1 2"], "training_args": "targs", "command_line": "run_x.py --a '1 2'"}
    assert capsys.readouterr().out == "test average 71.23: rte_score 60.00, cola_score 82.50\n"
    no_average = lambda *_, **__: {"test": {"test_rte_score": 60.0}}  # noqa: E731
    assert multitask_main("run_x.py", [], lambda argv: (argv, None), no_average) == 0
    assert capsys.readouterr().out == "test average n/a: rte_score 60.00\n"

    def bad(argv):
        raise ExperimentError("--tasks: unknown task 'qqp'")

    assert multitask_main("run_x.py", ["--tasks", "qqp"], bad, run) == 2
    assert capsys.readouterr().err == "run_x.py: error: --tasks: unknown task 'qqp'\n"
