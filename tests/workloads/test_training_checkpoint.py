"""Checkpoints: complete or absent, verified before use, the last K kept, bad ones skipped with a warning."""

from __future__ import annotations

import json

import torch

from workloads.training import checkpoint


def _save(root, step, world_size=1, keep=5):
    state = {"step": step, "epoch": 0, "position": step, "model": {"w": torch.full((3,), float(step))}}
    rngs = [{"torch": torch.get_rng_state(), "rank": torch.tensor(r)} for r in range(world_size)]
    return checkpoint.save(root, step, state=state, rngs=rngs, keep=keep)


def test_save_writes_a_complete_verified_folder_and_keeps_the_last_k(tmp_path):
    for step in (10, 20, 30, 40):
        _save(tmp_path, step, world_size=2, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000030", "step-00000040"]
    folder = tmp_path / "step-00000040"
    record = json.loads((folder / "COMPLETE.json").read_text())
    assert record["world_size"] == 2 and set(record["files"]) == {"state.pt", "rng-rank0.pt", "rng-rank1.pt"}
    loaded = checkpoint.load_latest(tmp_path, world_size=2)
    assert loaded.step == 40 and loaded.path == folder
    assert torch.equal(loaded.state["model"]["w"], torch.full((3,), 40.0))
    assert [int(r["rank"]) for r in loaded.rngs] == [0, 1]
    assert not list(tmp_path.glob(".tmp-*")) and not list(folder.glob(".*partial"))


def test_corrupt_and_partial_checkpoints_are_skipped_with_a_warning(tmp_path, capsys):
    _save(tmp_path, 10)
    _save(tmp_path, 20)
    _save(tmp_path, 30)
    state = tmp_path / "step-00000030" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated, as a disk-full or half-synced copy would be
    (tmp_path / "step-00000020" / "COMPLETE.json").unlink()  # never finished
    loaded = checkpoint.load_latest(tmp_path, world_size=1)
    assert loaded.step == 10
    err = capsys.readouterr().err
    assert "skipping checkpoint" in err and "step-00000030: state.pt does not match its sha256" in err
    assert "step-00000020: no COMPLETE.json (partial checkpoint)" in err


def test_unreadable_file_with_matching_record_and_other_world_size_are_skipped(tmp_path, capsys):
    _save(tmp_path, 10, world_size=2)
    assert checkpoint.load_latest(tmp_path, world_size=4) is None
    assert "written by 2 processes, this run has 4" in capsys.readouterr().err
    _save(tmp_path, 20)
    folder = tmp_path / "step-00000020"
    (folder / "state.pt").write_bytes(b"not a torch file")
    record = json.loads((folder / "COMPLETE.json").read_text())
    record["files"]["state.pt"] = checkpoint._sha256(folder / "state.pt")
    (folder / "COMPLETE.json").write_text(json.dumps(record))
    assert checkpoint.load_latest(tmp_path, world_size=1) is None
    assert "step-00000020: cannot be loaded" in capsys.readouterr().err


def test_leftover_staging_folders_are_cleaned_and_never_loaded(tmp_path):
    staging = tmp_path / ".tmp-step-00000050"
    staging.mkdir(parents=True)
    (staging / "state.pt").write_bytes(b"half")
    assert checkpoint.load_latest(tmp_path, world_size=1) is None
    checkpoint.clean_staging(tmp_path)
    assert not staging.exists()
