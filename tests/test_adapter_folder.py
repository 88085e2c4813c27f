"""Group commit of an adapter folder (staging sibling, manifest, one swap) and its verification."""

import json
import os

import pytest

from propetl_adapters import adapter_folder
from propetl_adapters.adapter_folder import (MANIFEST_NAME, AdapterFolderError, commit_folder, file_digest,
                                             verify_folder)

DEAD_PID = 2 ** 22 + 7  # above Linux's pid_max default range: no such process


def _writer(files):
    def write(folder):
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(data)
    return write


def _siblings(target):
    parent = os.path.dirname(target)
    return sorted(n for n in os.listdir(parent) if n != os.path.basename(target))


def test_commit_writes_files_and_a_manifest_that_verifies(tmp_path):
    target = str(tmp_path / "adapter")
    commit_folder(target, _writer({"adapter_config.json": b"{}", "pytorch_adapter.bin": b"abc"}))
    assert sorted(os.listdir(target)) == ["adapter_config.json", MANIFEST_NAME, "pytorch_adapter.bin"]
    listed = verify_folder(target)
    assert listed["pytorch_adapter.bin"] == {"size": 3, "sha256": file_digest(os.path.join(target,
                                                                                          "pytorch_adapter.bin"))[1]}
    assert _siblings(target) == []  # nothing left next to it


def test_second_commit_replaces_adapter_files_and_keeps_foreign_ones(tmp_path):
    target = str(tmp_path / "adapter")
    commit_folder(target, _writer({"adapter_config.json": b"{}", "pytorch_adapter.bin": b"old"}))
    (tmp_path / "adapter" / "notes.txt").write_text("mine")
    (tmp_path / "adapter" / "sub").mkdir()
    (tmp_path / "adapter" / "sub" / "x").write_text("nested")
    commit_folder(target, _writer({"adapter_config.json": b"{}", "adapter.safetensors": b"new"}))
    files = sorted(os.listdir(target))
    assert files == ["adapter.safetensors", "adapter_config.json", "notes.txt", MANIFEST_NAME, "sub"]
    assert (tmp_path / "adapter" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "adapter" / "sub" / "x").read_text() == "nested"
    assert set(verify_folder(target)) == {"adapter.safetensors", "adapter_config.json"}
    assert _siblings(target) == []


def test_a_failing_writer_leaves_the_old_folder_untouched(tmp_path):
    target = str(tmp_path / "adapter")
    commit_folder(target, _writer({"adapter_config.json": b"{}", "pytorch_adapter.bin": b"old"}))
    before = {n: (tmp_path / "adapter" / n).read_bytes() for n in os.listdir(target)}

    def failing(folder):
        _writer({"pytorch_adapter.bin": b"half"})(folder)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        commit_folder(target, failing)
    assert {n: (tmp_path / "adapter" / n).read_bytes() for n in os.listdir(target)} == before
    assert _siblings(target) == []


def test_stale_staging_folders_and_temp_files_are_removed_by_the_next_save(tmp_path):
    target = str(tmp_path / "adapter")
    commit_folder(target, _writer({"adapter_config.json": b"{}"}))
    stale = tmp_path / f".adapter.propetl-staging-{DEAD_PID}-0123abcd"
    stale.mkdir()
    (stale / "pytorch_adapter.bin").write_bytes(b"x" * 1000)
    (tmp_path / "adapter" / f"pytorch_adapter.bin.tmp-{DEAD_PID}").write_bytes(b"x" * 1000)
    (tmp_path / "adapter" / f"other.tmp-{DEAD_PID}").write_bytes(b"not ours")
    alive = tmp_path / f".adapter.propetl-staging-{os.getpid()}-0123abcd"  # a save in progress (this process)
    alive.mkdir()
    commit_folder(target, _writer({"adapter_config.json": b"{}"}))
    assert not stale.exists() and alive.exists()
    assert sorted(os.listdir(target)) == ["adapter_config.json", f"other.tmp-{DEAD_PID}", MANIFEST_NAME]


def test_without_an_atomic_exchange_two_renames_still_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(adapter_folder, "_exchange", lambda first, second: False)
    target = str(tmp_path / "adapter")
    commit_folder(target, _writer({"adapter_config.json": b"1"}))
    commit_folder(target, _writer({"adapter_config.json": b"2"}))
    assert (tmp_path / "adapter" / "adapter_config.json").read_bytes() == b"2"
    assert _siblings(target) == []


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "adapter").write_text("x")
    with pytest.raises(NotADirectoryError, match="adapter: exists and is not a folder"):
        commit_folder(str(tmp_path / "adapter"), _writer({}))


@pytest.mark.parametrize("damage, message", [
    ("flip", r"pytorch_adapter.bin: SHA-256 differs"),
    ("truncate", r"pytorch_adapter.bin: 2 bytes, propetl_manifest.json says 3"),
    ("delete", r"pytorch_adapter.bin: missing, but propetl_manifest.json lists it"),
    ("add_head", r"pytorch_model_head.bin: not listed in propetl_manifest.json"),
    ("bad_json", r"propetl_manifest.json: unreadable manifest"),
    ("bad_format", r"propetl_manifest.json: manifest format 7"),
    ("bad_entry", r"propetl_manifest.json: invalid entry '../x'"),
])
def test_verify_names_the_file_that_does_not_match(tmp_path, damage, message):
    target = tmp_path / "adapter"
    commit_folder(str(target), _writer({"adapter_config.json": b"{}", "pytorch_adapter.bin": b"abc"}))
    weights, manifest = target / "pytorch_adapter.bin", target / MANIFEST_NAME
    if damage == "flip":
        weights.write_bytes(b"abd")
    elif damage == "truncate":
        weights.write_bytes(b"ab")
    elif damage == "delete":
        weights.unlink()
    elif damage == "add_head":
        (target / "pytorch_model_head.bin").write_bytes(b"")
    elif damage == "bad_json":
        manifest.write_text("{not json")
    elif damage == "bad_format":
        manifest.write_text(json.dumps({"format": 7, "files": {}}))
    else:
        manifest.write_text(json.dumps({"format": 1, "files": {"../x": {"size": 1, "sha256": "0" * 64}}}))
    with pytest.raises(AdapterFolderError, match=message):
        verify_folder(str(target))


def test_folder_without_manifest_is_reported_as_such(tmp_path):
    assert verify_folder(str(tmp_path)) is None


# --- the crash loop: saves killed at random points ---

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVER = """
import sys
sys.path.insert(0, {repo!r})
from tests.test_adapter_folder import crash_loop_models
models = crash_loop_models()
print("ready", flush=True)
for k in range({first}, {first} + 10 ** 6):
    name = "AB"[k % 2]
    print("saving", name, flush=True)
    models[name].save_adapter({folder!r}, "task", with_head=True, use_safetensors=(name == "A"))
    print("saved", name, flush=True)
"""


def crash_loop_models():
    """Adapters A and B (with heads) on one tiny BERT backbone; built identically in the test and its child."""
    import torch
    from tests.conftest import build_adapter_model
    models = {}
    for index, name in enumerate("AB"):
        model = build_adapter_model("bert", "proadapter[reduction_factor=4]", seed=0)
        generator = torch.Generator().manual_seed(100 + index)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn(param.shape, generator=generator))
        model.set_active_adapters("task")
        models[name] = model.eval()
    return models


def _loaded_as(folder, models):
    """'A' or 'B' when the folder loads as exactly one of them, else raises (refused or a mixture)."""
    import torch
    from adapters import AutoAdapterModel
    from propetl_adapters.serialization import adapter_tensors
    from tests.conftest import model_inputs, tiny_config
    torch.manual_seed(0)
    fresh = AutoAdapterModel.from_config(tiny_config("bert")).eval()
    fresh.load_adapter(folder, set_active=True, use_safetensors=True)
    inputs = model_inputs("bert")
    matches = []
    for name, model in models.items():
        # Scores are not saved (the reloaded ones are the 0/1 masks): the masks are compared through the outputs.
        ours, theirs = ({**{k: v for k, v in adapter_tensors(m, "task").items() if not k.endswith(".scores")},
                         **m.heads["task"].state_dict()} for m in (model, fresh))
        same = set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
        with torch.no_grad():
            same = same and torch.equal(model(**inputs).logits, fresh(**inputs).logits)
        if same:
            matches.append(name)
    assert len(matches) == 1, f"{folder} loaded as neither A nor B exactly (a mixture)"
    return matches[0]


@pytest.mark.slow
def test_saves_killed_at_random_points_leave_a_or_b(tmp_path):
    """20 saver processes killed (SIGKILL) at seeded random times while saving A and B alternately into one
    folder; after every kill the folder loads as exactly A or B, or is refused naming its file."""
    import random
    import signal
    import subprocess
    import sys
    import time

    models = crash_loop_models()
    folder = str(tmp_path / "adapter")
    started = time.perf_counter()
    models["A"].save_adapter(folder, "task", with_head=True, use_safetensors=True)
    save_seconds = time.perf_counter() - started  # kills land within the first three saves of each saver
    rng = random.Random(17)
    outcomes, mid_save, leftovers = [], 0, 0
    for round_ in range(20):
        saver = subprocess.Popen([sys.executable, "-c", SAVER.format(repo=REPO, folder=folder, first=round_)],
                                 cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert saver.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 3 * save_seconds))
            saver.send_signal(signal.SIGKILL)
            saver.wait()
            progress = saver.stdout.read().split()
        finally:
            saver.kill()
            saver.stdout.close()
        mid_save += "saving" in progress[-2:]
        leftovers += any(".propetl-staging-" in name for name in os.listdir(tmp_path))
        try:
            outcomes.append(_loaded_as(folder, models))
        except ValueError as err:  # refused: the message must name the folder's file
            assert folder in str(err), err
            outcomes.append("refused")
    print(f"\ncrash loop: {outcomes.count('A')} A, {outcomes.count('B')} B, {outcomes.count('refused')} refused; "
          f"{mid_save} kills during a save, {leftovers} left a staging folder")
    assert set(outcomes) <= {"A", "B"} and len(outcomes) == 20
    assert mid_save > 0
    models["B"].save_adapter(folder, "task", with_head=True)  # the next save removes what the kills left
    assert sorted(os.listdir(tmp_path)) == ["adapter"]
    assert sorted(os.listdir(folder)) == ["adapter_config.json", "head_config.json", MANIFEST_NAME,
                                          "propetl_masks.bin", "pytorch_adapter.bin", "pytorch_model_head.bin"]
    assert _loaded_as(folder, models) == "B"
