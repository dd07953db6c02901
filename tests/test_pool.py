"""ImagePool with the official semantics (paper §4), under a fixed seed."""
from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from cyclegan_edu.pool import ImagePool


def images(*ids: int) -> torch.Tensor:
    """A batch of 1×2×2 'images', each filled with its id, so returned images can be identified."""
    return torch.stack([torch.full((1, 2, 2), float(i)) for i in ids])


def ids(batch: torch.Tensor) -> list[int]:
    return [int(im[0, 0, 0]) for im in batch]


def stored(pool: ImagePool) -> Counter:
    return Counter(int(im.flatten()[0]) for im in pool.images)


def test_size_zero_passes_the_batch_through():
    pool = ImagePool(0)
    batch = images(1, 2, 3)
    assert pool.query(batch) is batch
    assert len(pool) == 0


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(-1)


def test_fill_phase_returns_the_new_images_and_stores_them():
    random.seed(0)
    pool = ImagePool(4)
    assert ids(pool.query(images(1, 2))) == [1, 2]
    assert ids(pool.query(images(3, 4))) == [3, 4]
    assert stored(pool) == Counter({1: 1, 2: 1, 3: 1, 4: 1})


def test_stored_images_are_detached():
    pool = ImagePool(2)
    x = images(1, 2).requires_grad_()
    out = pool.query(x * 1)
    assert not out.requires_grad and not any(im.requires_grad for im in pool.images)


def test_full_pool_swaps_about_half_with_stored_images():
    random.seed(0)
    size, n = 10, 2000
    pool = ImagePool(size)
    pool.query(images(*range(size)))                    # fill with ids 0..9
    swapped = 0
    for new in range(size, size + n):
        before = stored(pool)
        (got,) = ids(pool.query(images(new)))
        after = stored(pool)
        if got == new:                                  # the new image comes back, the pool is unchanged
            assert after == before
        else:                                           # a stored image comes back and the new one takes its place
            swapped += 1
            assert before[got] >= 1
            assert after == before - Counter({got: 1}) + Counter({new: 1})
        assert len(pool) == size
    assert 0.45 < swapped / n < 0.55


def test_batches_are_handled_per_image_and_reproducible_under_a_seed():
    def run():
        random.seed(123)
        pool = ImagePool(3)
        return [ids(pool.query(images(*range(k, k + 3)))) for k in range(0, 30, 3)]

    first, second = run(), run()
    assert first == second
    assert first[0] == [0, 1, 2]
    later = [i for batch in first[1:] for i in batch]
    new = [i for k in range(3, 30, 3) for i in range(k, k + 3)]
    mixed = sum(a != b for a, b in zip(later, new))
    assert 0 < mixed < len(new)                         # some old, some new images
    assert all(a <= b for a, b in zip(later, new))      # a returned image is never from the future


def test_returned_history_image_is_a_copy():
    random.seed(1)
    pool = ImagePool(1)
    pool.query(images(7))
    while True:
        out = pool.query(images(8))
        if ids(out) == [7]:
            break
    out.fill_(-1)
    assert stored(pool) == Counter({8: 1})


def test_state_dict_round_trip():
    random.seed(0)
    pool = ImagePool(3)
    pool.query(images(1, 2, 3))
    copy = ImagePool(3)
    copy.load_state_dict(pool.state_dict())
    assert stored(copy) == stored(pool) and copy.size == 3
