"""Discovery places: fixed places of a ranked list that go to products the customer never bought.

A MAP-optimal list for a grocery customer is almost all repeats.  ``discovery_positions`` (e.g.
``[10, 11]``) trades a little accuracy for new-to-customer recall: those places hold the
best-scored products the customer has not bought before, and the other places keep the pure
ranking's order (skipping what is already placed).  The places are fixed, so a longer list
starts with the shorter one.  The hybrid's offline ``recommend`` and the service's answers use
the same :func:`interleave`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def places_within(positions: Iterable[int], k: int) -> list[int]:
    """The distinct 0-based places below ``k``, ascending."""
    return sorted({int(p) for p in positions if 0 <= int(p) < k})


def interleave(ids: np.ndarray, scores: np.ndarray, new_ids: np.ndarray, new_scores: np.ndarray,
               places: Iterable[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """A list of ``k``: ``places`` from (``new_ids``, ``new_scores``) and the other places from
    (``ids``, ``scores``), each in its own order, no item twice.  Negative ids mark empty slots and
    are skipped; when one list runs out its places fall to the other, and when both have, -1 / -inf."""
    wanted = set(places)
    queues = {False: iter(zip(ids, scores)), True: iter(zip(new_ids, new_scores))}
    out_ids = np.full(k, -1, dtype=np.int64)
    out_sc = np.full(k, -np.inf, dtype=np.float32)
    used: set[int] = set()
    def take(new: bool):
        return next(((int(i), s) for i, s in queues[new] if i >= 0 and int(i) not in used), None)

    for p in range(k):
        item, score = take(p in wanted) or take(p not in wanted) or (-1, -np.inf)
        if item >= 0:
            used.add(item)
        out_ids[p], out_sc[p] = item, score
    return out_ids, out_sc
