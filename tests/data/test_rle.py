"""RLE as the competition defines it: 1-based, column-major, "start length" pairs."""

import numpy as np
import pytest

from saltseg.data.rle import decode, encode
from saltseg.errors import SaltError


def test_hand_made_3x3():
    # Column-major numbering of a 3x3 image:   1 4 7
    #                                          2 5 8
    #                                          3 6 9
    mask = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    assert encode(mask) == "1 2 6 1 8 1"
    np.testing.assert_array_equal(decode("1 2 6 1 8 1", (3, 3)), mask)


def test_runs_continue_down_into_the_next_column():
    mask = np.zeros((3, 3), dtype=bool)
    mask[2, 0] = mask[0, 1] = mask[1, 1] = True  # pixels 3, 4, 5: one run
    assert encode(mask) == "3 3"


def test_first_and_last_pixel():
    mask = np.zeros((101, 101), dtype=bool)
    mask[0, 0] = True
    mask[-1, -1] = True
    assert encode(mask) == "1 1 10201 1"
    np.testing.assert_array_equal(decode("1 1 10201 1"), mask)


def test_full_column_and_row():
    column = np.zeros((101, 101), dtype=bool)
    column[:, 2] = True
    assert encode(column) == "203 101"
    row = np.zeros((101, 101), dtype=bool)
    row[0, :3] = True  # a row is 3 runs of 1, one per column
    assert encode(row) == "1 1 102 1 203 1"


def test_empty_and_full():
    assert encode(np.zeros((101, 101), dtype=bool)) == ""
    assert not decode("").any()
    assert not decode("   ").any()
    assert decode("1 10201").all()
    assert encode(np.ones((4, 5))) == "1 20"


def test_non_square_shape_uses_height_for_columns():
    mask = np.zeros((2, 3), dtype=bool)
    mask[:, 1] = True
    assert encode(mask) == "3 2"
    np.testing.assert_array_equal(decode("3 2", (2, 3)), mask)


def test_adjacent_runs_are_accepted():
    np.testing.assert_array_equal(decode("1 2 3 1", (3, 3)), decode("1 3", (3, 3)))


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    shape = (101, 101) if seed % 2 else tuple(rng.integers(1, 30, 2))
    mask = rng.random(shape) < rng.random()
    text = encode(mask)
    np.testing.assert_array_equal(decode(text, shape), mask)
    values = [int(v) for v in text.split()]
    assert len(values) % 2 == 0


@pytest.mark.parametrize(
    ("rle", "problem"),
    [
        ("1 2 3", "odd number"),
        ("1 x", "not a non-negative integer"),
        ("1.5 2", "not a non-negative integer"),
        ("1 -2", "not a non-negative integer"),
        ("1 0", "zero length"),
        ("0 3", "start below 1"),
        ("10200 5", "past the last pixel"),
        ("10202 1", "past the last pixel"),
        ("5 5 7 2", "overlaps or precedes"),
        ("20 2 5 2", "overlaps or precedes"),
    ],
)
def test_decode_errors(rle, problem):
    with pytest.raises(SaltError, match=problem):
        decode(rle)


def test_decode_rejects_non_strings():
    with pytest.raises(SaltError, match="must be a string"):
        decode(float("nan"))
