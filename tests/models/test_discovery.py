import numpy as np

from hoprec.models.discovery import interleave, places_within


def test_places_within_keeps_distinct_places_below_k():
    assert places_within([11, 3, 3, 12, -1], 12) == [3, 11]
    assert places_within([], 5) == []


def test_interleave_fills_places_from_the_new_list_without_repeats():
    ids = np.array([10, 11, 12, 13, 14])
    sc = np.array([5.0, 4, 3, 2, 1], np.float32)
    new_ids = np.array([12, 20, 21])  # 12 is already placed by the main list
    new_sc = np.array([3.0, 0.5, 0.4], np.float32)
    out, out_sc = interleave(ids, sc, new_ids, new_sc, [1, 3], 5)
    # place 1 takes the new list's first item (12): the main list then skips it later
    assert out.tolist() == [10, 12, 11, 20, 13]
    assert out_sc.tolist() == [5.0, 3.0, 4.0, 0.5, 2.0]


def test_interleave_falls_back_when_a_list_runs_out():
    ids = np.array([1, 2, -1, -1])
    new_ids = np.array([7, -1, -1, -1])
    sc = np.array([2.0, 1.0, -np.inf, -np.inf], np.float32)
    out, out_sc = interleave(ids, sc, new_ids, sc.copy(), [0, 1], 4)
    assert out.tolist() == [7, 1, 2, -1]  # place 1 falls back to the main list, place 3 is empty
    assert np.isneginf(out_sc[3])
