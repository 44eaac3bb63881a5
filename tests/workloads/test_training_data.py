"""Data order: reproducible per (seed, epoch), disjoint and equal-sized across ranks, every example covered."""

from __future__ import annotations

from workloads.training.data import epoch_order, steps_per_epoch


def test_ranks_split_each_epoch_evenly_and_cover_every_example():
    n, world = 10, 4
    shards = [epoch_order(n, seed=1, epoch=0, world_size=world, rank=r) for r in range(world)]
    assert {len(s) for s in shards} == {3}, "padded so every rank takes the same number of steps"
    assert set().union(*shards) == set(range(n))
    assert epoch_order(n, seed=1, epoch=0, world_size=world, rank=2) == shards[2], "reproducible"
    assert epoch_order(n, seed=1, epoch=1, world_size=world, rank=0) != shards[0], "reshuffled per epoch"
    assert steps_per_epoch(n, batch_size=2, world_size=world) == 2


def test_more_ranks_than_examples_still_gives_every_rank_work():
    shards = [epoch_order(3, seed=0, epoch=0, world_size=8, rank=r) for r in range(8)]
    assert all(len(s) == 1 for s in shards) and set().union(*shards) == {0, 1, 2}
