"""mask_movement.py: the share of kept mask entries that training moved away from the initial draw."""

from types import SimpleNamespace

import pytest
import torch

from propetl_adapters.mask_movement import (INITIAL_MASKS_FILE, MASK_MOVEMENT_FILE, MaskMovementCallback,
                                            load_snapshot, mask_snapshot, movement, save_snapshot)
from propetl_adapters.masks import TensorMask


class TwoMasks(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = TensorMask((2, 5), 0.5, "learned")   # 5 of 10 kept
        self.second = TensorMask((3, 3), 1 / 3, "learned")  # 3 of 9 kept
        self.frozen = TensorMask((2, 2), 0.5, "learned")
        self.frozen.scores.requires_grad_(False)  # e.g. an old task's mask while add_task trains a new one


def bits(*values, shape):
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def test_snapshot_round_trip_keeps_names_shapes_and_bits_of_odd_sizes(tmp_path):
    model = TwoMasks()
    snapshot = mask_snapshot(model)
    assert set(snapshot) == {"first", "second"}  # only masks whose scores train
    save_snapshot(str(tmp_path / "masks.npz"), snapshot)
    loaded = load_snapshot(str(tmp_path / "masks.npz"))
    assert loaded.keys() == snapshot.keys()
    assert all(torch.equal(loaded[name], snapshot[name]) for name in snapshot)  # 10 and 9 bits: not whole bytes


def test_movement_is_the_share_of_kept_entries_not_kept_at_the_start():
    model = TwoMasks()
    model.first.load_binary(bits(1, 1, 1, 1, 1, 0, 0, 0, 0, 0, shape=(2, 5)))
    model.second.load_binary(bits(1, 1, 1, 0, 0, 0, 0, 0, 0, shape=(3, 3)))
    initial = mask_snapshot(model)
    assert movement(initial, model)["moved"] == 0.0

    model.first.load_binary(bits(1, 1, 1, 0, 0, 1, 1, 0, 0, 0, shape=(2, 5)))  # 2 of its 5 kept entries are new
    model.second.load_binary(bits(0, 0, 0, 1, 1, 1, 0, 0, 0, shape=(3, 3)))  # all 3 are new
    measured = movement(initial, model)
    assert measured["least_moved"] == pytest.approx(2 / 5) and measured["most_moved"] == 1.0
    assert measured["moved"] == pytest.approx((2 + 3) / (5 + 3))  # weighted by kept entries
    # a fresh draw: 1 - k of each mask, weighted by kept entries like `moved` (k = 1/2 and 1/3 here)
    assert measured["fresh_draw_level"] == pytest.approx((5 * (1 - 5 / 10) + 3 * (1 - 3 / 9)) / 8)
    assert measured["masks"] == 2


def test_movement_refuses_a_snapshot_of_other_masks():
    with pytest.raises(ValueError, match="do not match"):
        movement({"first": torch.zeros(2, 5, dtype=torch.bool)}, TwoMasks())
    assert movement({}, torch.nn.Linear(2, 2)) is None


def _events(output_dir, step):
    args = SimpleNamespace(output_dir=str(output_dir))
    state = SimpleNamespace(global_step=step, is_world_process_zero=True)
    return args, state


def test_callback_measures_from_the_saved_draw_after_a_resume(tmp_path):
    model = TwoMasks()
    callback = MaskMovementCallback()
    args, state = _events(tmp_path, 0)
    callback.on_train_begin(args, state, None, model=model)
    assert (tmp_path / INITIAL_MASKS_FILE).is_file()
    initial_first = model.first.binary().clone()
    model.first.load_binary(1 - initial_first.float())  # the kept half becomes the dropped half
    state.global_step = 4
    callback.on_evaluate(args, state, None, model=model)
    assert callback.history == [{"step": 4, "moved": pytest.approx(5 / 8)}]
    assert (tmp_path / MASK_MOVEMENT_FILE).is_file()

    # A new process resumes at step 4: the scores come from the checkpoint, the initial draw from the file.
    resumed = MaskMovementCallback()
    args, state = _events(tmp_path, 4)
    resumed.on_train_begin(args, state, None, model=model)
    assert torch.equal(resumed.initial["first"], initial_first)
    state.global_step = 6
    resumed.on_evaluate(args, state, None, model=model)
    resumed.on_train_end(args, state, None, model=model)
    resumed.on_evaluate(args, state, None, model=model)  # the finished model's validation: not history
    summary = resumed.summary()
    assert summary["moved"] == pytest.approx(5 / 8)
    assert [h["step"] for h in summary["history"]] == [4, 6]  # the evaluations before the resume are kept


def test_callback_records_nothing_for_a_model_without_trained_masks(tmp_path):
    callback = MaskMovementCallback()
    args, state = _events(tmp_path, 0)
    model = torch.nn.Linear(2, 2)
    callback.on_train_begin(args, state, None, model=model)
    callback.on_evaluate(args, state, None, model=model)
    callback.on_train_end(args, state, None, model=model)
    assert callback.summary() is None and not (tmp_path / INITIAL_MASKS_FILE).exists()
