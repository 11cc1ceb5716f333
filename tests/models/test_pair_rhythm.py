"""Basket-sequence and repurchase-rhythm signals, checked against a history worked by hand."""

import numpy as np
import pytest

from hoprec.models.pair_features import _lookup
from hoprec.models.pair_rhythm import FEATURES, rhythm, rhythm_features

# customer 0: baskets 10 (age 100: items 1, 2), 11 (age 60: item 1), 12 (age 10: item 2),
# 13 (age 5: item 1, on two lines); customer 1: baskets 20 (age 50) and 21 (age 40), item 1 each
USER = np.array([0, 0, 0, 0, 0, 0, 1, 1])
ITEM = np.array([1, 2, 1, 2, 1, 1, 1, 1])
BASKET = np.array([10, 10, 11, 12, 13, 13, 20, 21])
AGE = np.array([100.0, 100.0, 60.0, 10.0, 5.0, 5.0, 50.0, 40.0])


def test_signals_match_the_hand_worked_history():
    rh = rhythm(USER, ITEM, BASKET, AGE, n_users=2, n_items=3, horizon_days=30.0)
    u, i = np.array([0, 0, 1, 1]), np.array([1, 2, 1, 2])
    last = np.array([5.0, 10.0, 40.0, np.nan])
    baskets = np.array([4.0, 2.0])  # customer 0 has four baskets, customer 1 two
    cols = dict(zip(FEATURES, rhythm_features(rh, u, i, last, baskets, _lookup)))
    # baskets since last: item 1 is in customer 0's latest basket, item 2 one basket earlier
    np.testing.assert_array_equal(cols["baskets_since_last"][:3], [0, 1, 0])
    assert np.isnan(cols["baskets_since_last"][3])  # never bought
    np.testing.assert_allclose(cols["in_last3"], [2 / 3, 1 / 3, 2 / 2, 0])
    np.testing.assert_allclose(cols["in_last10"], [3 / 4, 2 / 4, 2 / 2, 0])
    # rebought within 30 days, among purchases at least 30 days old: customer 0 never (gaps 40,
    # 55, 90); customer 1 once in two (gap 10, then none)
    np.testing.assert_allclose(cols["pair_rebuy"][:3], [0.0, 0.0, 0.5])
    assert np.isnan(cols["pair_rebuy"][3])
    np.testing.assert_allclose(cols["user_rebuy"], [0, 0, 0.5, 0.5])
    # item 1: 1 of 4 eligible purchases rebought; global rate 1/5; prior of 20 purchases
    assert cols["item_rebuy"][0] == pytest.approx((1 + 20 * 0.2) / (4 + 20))
    assert cols["item_gap"][0] == pytest.approx((40 + 55 + 10) / 3)
    assert cols["item_gap"][1] == pytest.approx(90.0)
    assert cols["overdue_item"][0] == pytest.approx(5 / 35)


def test_hybrid_sequence_rhythm_option_adds_the_columns():
    from hoprec.models.hybrid import Hybrid

    off, on = Hybrid(), Hybrid(sequence_rhythm=True)
    assert not set(FEATURES) & set(off.feature_names())
    assert set(FEATURES) <= set(on.feature_names())
