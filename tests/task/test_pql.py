"""Tests for the predictive-query language (hoprec.task.pql)."""

import datetime
import pickle

import pytest

from hoprec.task.pql import (
    Aggregate,
    And,
    ColumnRef,
    Comparison,
    InList,
    IsNull,
    Literal,
    Not,
    Or,
    PQLError,
    Query,
    Window,
    parse,
)

BASE = "PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 FOR EACH households.household_id"
TABLES = {
    "households": ["household_id", "income", "age", "kids"],
    "products": ["product_id", "department", "brand"],
    "transactions": ["household_id", "product_id", "sales_value", "day"],
}


def col(table, column):
    return ColumnRef(table, column)


def where(condition: str):
    return parse(f"{BASE} WHERE {condition}").where


def error(text: str) -> PQLError:
    with pytest.raises(PQLError) as info:
        parse(text)
    return info.value


# ----------------------------------------------------------------------------- accepted


def test_canonical_query():
    q = parse(BASE)
    assert q.target == Aggregate("LIST_DISTINCT", col("transactions", "product_id"), Window(0, 30, "days"))
    assert q.target.position == BASE.index("LIST_DISTINCT")
    assert q.target.ref.position == BASE.index("transactions")
    assert q.top_k == 12
    assert q.entity == col("households", "household_id")
    assert q.entity.position == BASE.index("households")
    assert (q.next_ref, q.per_session, q.where, q.text) == (None, False, None, BASE)


def test_window_timedeltas():
    assert Window(0, 30, "days").to_timedelta_pair() == (datetime.timedelta(0), datetime.timedelta(days=30))
    assert Window(-2, 0.5, "weeks").to_timedelta_pair() == (
        datetime.timedelta(weeks=-2), datetime.timedelta(days=3.5))


def test_where_string_equality():
    text = f"{BASE} WHERE households.income = '50-74K'"
    w = parse(text).where
    assert w == Comparison(col("households", "income"), "=", Literal("50-74K"))
    assert w.right.position == text.index("'50-74K'")


def test_where_past_count():
    assert where("COUNT(transactions.*, -90, 0, days) > 0") == Comparison(
        Aggregate("COUNT", col("transactions", None), Window(-90, 0, "days")), ">", Literal(0))


def test_precedence_not_and_or():
    a = Comparison(col("households", "age"), ">", Literal(30))
    b = Comparison(col("households", "kids"), "=", Literal(0))
    c = Comparison(col("households", "income"), "!=", Literal("x"))
    assert where("households.age > 30 OR households.kids = 0 AND NOT households.income <> 'x'") == Or(
        a, And(b, Not(c)))
    assert where("(households.age > 30 OR households.kids = 0) AND households.income != 'x'") == And(
        Or(a, b), c)
    assert where("NOT (households.age > 30 AND households.kids = 0)") == Not(And(a, b))
    assert where("households.age > 30 AND households.kids = 0 AND households.income != 'x'") == And(
        And(a, b), c)


def test_in_lists():
    w = where("households.income IN ('50-74K', 'It''s', 3, -1.5, TRUE)")
    assert w == InList(col("households", "income"),
                       (Literal("50-74K"), Literal("It's"), Literal(3), Literal(-1.5), Literal(True)), False)
    assert where("households.kids NOT IN (0)") == InList(col("households", "kids"), (Literal(0),), True)


def test_is_null():
    assert where("households.income IS NOT NULL") == IsNull(col("households", "income"), True)
    assert where("households.income is null") == IsNull(col("households", "income"), False)


@pytest.mark.parametrize("op,canon", [("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"),
                                      ("<=", "<="), (">", ">"), (">=", ">=")])
def test_comparison_operators(op, canon):
    assert where(f"households.age {op} 5").op == canon


def test_lowercase_keywords_singular_units_semicolon():
    q = parse("predict list_distinct(transactions.product_id, 0, 1, week) rank top 5 "
              "for each households.household_id where count(transactions.*, -1, 0, hour) >= 1;")
    assert q.target.func == "LIST_DISTINCT"
    assert q.target.window == Window(0, 1, "weeks")
    assert q.where.left.window.unit == "hours"
    assert q.top_k == 5
    assert parse(BASE + " ;") == parse(BASE)


def test_identifiers_keep_their_case():
    q = parse("PREDICT LIST_DISTINCT(Trans.ProductID, 0, 7, DAYS) RANK TOP 3 FOR EACH Users.ID")
    assert q.target.ref == col("Trans", "ProductID")
    assert q.entity == col("Users", "ID")


def test_next_session_query():
    q = parse("PREDICT NEXT(events.item_id) RANK TOP 20 FOR EACH SESSION")
    assert q.next_ref == col("events", "item_id")
    assert (q.target, q.entity, q.per_session, q.top_k) == (None, None, True, 20)
    assert str(q) == "PREDICT NEXT(events.item_id) RANK TOP 20 FOR EACH SESSION"


def test_non_ranking_target_has_no_top_k():
    q = parse("PREDICT SUM(transactions.sales_value, 0, 30, days) FOR EACH households.household_id")
    assert q.target.func == "SUM" and q.top_k is None


def test_column_refs_in_order():
    q = parse(f"{BASE} WHERE households.age > 3 AND COUNT(transactions.*, -7, 0, days) > 0")
    assert [str(r) for r in q.column_refs()] == [
        "transactions.product_id", "households.household_id", "households.age", "transactions.*"]


@pytest.mark.parametrize("text", [
    BASE,
    f"{BASE} WHERE households.income = '50-74K'",
    f"{BASE} WHERE COUNT(transactions.*, -90, 0, days) > 0",
    f"{BASE} WHERE NOT (households.age > 30 OR households.kids = 0) AND households.income <> 'It''s'",
    f"{BASE} WHERE households.age > 1 AND (households.age < 9 AND households.kids IN (1, 2.5))",
    f"{BASE} WHERE NOT NOT households.income IS NOT NULL OR households.kids NOT IN (TRUE, FALSE)",
    f"{BASE} WHERE AVG(transactions.sales_value, -1.5, -0.25, weeks) >= 1e-05",
    "predict count(transactions.*, 0, 7, day) for each households.household_id;",
    "PREDICT NEXT(events.item_id) RANK TOP 20 FOR EACH SESSION WHERE 'a' = events.kind",
])
def test_str_round_trip(text):
    q = parse(text)
    again = parse(str(q))
    assert again == q
    assert str(again) == str(q)


def test_str_is_canonical():
    q = parse("predict list_distinct(transactions.product_id,0,30,day) rank top 12 for each "
              "households.household_id where ((households.age>3)) and not households.kids<>0;")
    assert str(q) == (f"{BASE} WHERE households.age > 3 AND NOT households.kids != 0")


def test_validate_accepts_known_columns():
    parse(f"{BASE} WHERE COUNT(transactions.*, -90, 0, days) > 0 AND households.income = 'x'").validate(TABLES)


# ----------------------------------------------------------------------------- rejected


def test_validate_misspelled_column_suggests():
    text = BASE.replace("product_id", "prodct_id")
    with pytest.raises(PQLError) as info:
        parse(text).validate(TABLES)
    e = info.value
    assert e.message == "no column 'prodct_id' in transactions; did you mean product_id?"
    assert e.position == text.index("prodct_id")
    assert "^" in str(e) and f"(position {e.position})" in str(e)


def test_validate_column_case_slip_and_no_match():
    with pytest.raises(PQLError, match="did you mean income"):
        parse(f"{BASE} WHERE households.Income = 'x'").validate(TABLES)
    with pytest.raises(PQLError) as info:
        parse(f"{BASE} WHERE households.zzzzz = 'x'").validate(TABLES)
    assert "(columns: household_id, income, age, kids)" in info.value.message


def test_validate_unknown_table():
    text = BASE.replace("transactions.", "transaction.")
    with pytest.raises(PQLError) as info:
        parse(text).validate(TABLES)
    assert info.value.message == ("no table 'transaction'; did you mean transactions? "
                                  "(tables: households, products, transactions)")
    assert info.value.position == text.index("transaction.")


def test_validate_truncates_long_listings():
    many = {"t": [f"c{i}" for i in range(30)]}
    with pytest.raises(PQLError) as info:
        parse("PREDICT COUNT(t.zzzz, 0, 1, days) FOR EACH t.c0").validate(many)
    assert "c11, ... (18 more)" in info.value.message


def test_missing_rank_top():
    text = "PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) FOR EACH households.household_id"
    e = error(text)
    assert e.message == "expected RANK TOP k after the target"
    assert e.position == text.index("FOR")
    assert "RANK TOP k" in error("PREDICT NEXT(events.item_id) FOR EACH SESSION").message


@pytest.mark.parametrize("k", ["0", "10001", "2.5", "-3", "many"])
def test_bad_top_k(k):
    text = BASE.replace("TOP 12", f"TOP {k}")
    e = error(text)
    assert "whole number k from 1 to 10000" in e.message
    assert e.position == text.index(k, text.index("TOP"))


def test_rank_top_needs_list_distinct():
    text = "PREDICT SUM(transactions.sales_value, 0, 30, days) RANK TOP 5 FOR EACH households.household_id"
    e = error(text)
    assert "RANK TOP needs a LIST_DISTINCT" in e.message and e.position == text.index("RANK")


def test_bad_unit():
    text = BASE.replace("days", "dayz")
    e = error(text)
    assert e.message == "unknown unit 'dayz'; valid: minutes, hours, days, weeks"
    assert e.position == text.index("dayz")


@pytest.mark.parametrize("window", ["30, 30", "30, 0", "5, 1.5"])
def test_window_start_not_before_end(window):
    text = BASE.replace("0, 30", window)
    e = error(text)
    assert e.message.startswith("window start must be before its end")
    assert e.position == text.index(window)


def test_target_window_must_be_future():
    e = error(BASE.replace("0, 30", "-7, 30"))
    assert "the target must look at the future" in e.message
    assert e.position == BASE.index("0, 30")


def test_future_window_in_where():
    text = f"{BASE} WHERE COUNT(transactions.*, -90, 5, days) > 0"
    e = error(text)
    assert e.message.startswith("WHERE may only look at the past (end <= 0), got COUNT(")
    assert e.position == text.index("5, days")


def test_star_only_for_count():
    text = f"{BASE} WHERE SUM(transactions.*, -90, 0, days) > 0"
    e = error(text)
    assert "SUM needs a column, not transactions.*" in e.message
    assert e.position == text.index("transactions.*")
    assert "only allowed inside COUNT" in error(f"{BASE} WHERE households.* = 1").message
    assert "only allowed inside COUNT" in error(BASE.replace("households.household_id", "households.*")).message


def test_next_needs_session():
    text = "PREDICT NEXT(events.item_id) RANK TOP 20 FOR EACH users.user_id"
    e = error(text)
    assert "use FOR EACH SESSION" in e.message and e.position == text.index("users")


def test_session_needs_next():
    text = "PREDICT LIST_DISTINCT(events.item_id, 0, 1, hours) RANK TOP 20 FOR EACH SESSION"
    e = error(text)
    assert e.message == "FOR EACH SESSION needs a NEXT(...) target"
    assert e.position == text.index("SESSION")


def test_unterminated_string():
    text = f"{BASE} WHERE households.income = '50-74K"
    e = error(text)
    assert e.message == "unterminated string literal" and e.position == text.index("'")


def test_trailing_junk():
    text = f"{BASE} LIMIT 5"
    e = error(text)
    assert e.message == "unexpected 'LIMIT' after the end of the query"
    assert e.position == text.index("LIMIT")
    assert error(BASE + "; ;").position == len(BASE) + 2


@pytest.mark.parametrize("text", ["", "   \n  "])
def test_empty_query(text):
    e = error(text)
    assert e.message == "empty query" and e.position == 0


def test_unexpected_character():
    e = error(f"{BASE} WHERE households.age > 3 # comment")
    assert e.message == "unexpected character '#'"


def test_missing_comma_shows_caret():
    text = "PREDICT LIST_DISTINCT(transactions.product_id 0, 30, days) RANK TOP 12 FOR EACH households.household_id"
    e = error(text)
    assert e.message == "expected ',' after the LIST_DISTINCT column"
    assert e.position == text.index(" 0,") + 1
    caret_line = str(e).splitlines()[-1]
    assert caret_line.index("^") - 2 == e.position


@pytest.mark.parametrize("text,message", [
    ("SELECT * FROM x", "expected PREDICT at the start of the query"),
    ("PREDICT FOO(t.c, 0, 1, days) FOR EACH t.id", "expected an aggregate such as"),
    ("PREDICT COUNT(t.c, 0, 1, days) EACH t.id", "expected FOR EACH after the target"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR t.id", "expected EACH after FOR"),
    ("PREDICT COUNT(t, 0, 1, days) FOR EACH t.id", "expected '.' after 't'"),
    ("PREDICT COUNT(t.c, zero, 1, days) FOR EACH t.id", "expected a number for the window start"),
    ("PREDICT COUNT(t.c, 0, 1) FOR EACH t.id", "expected ',' after the window end"),
    ("PREDICT COUNT(t.c, 0, 1, days FOR EACH t.id", "expected ')' to close COUNT(...)"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE (t.a = 1", "expected ')' to close the '('"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE t.a", "expected a comparison"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE t.a = NULL", "use IS NULL"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE t.a IN (1, NULL)", "NULL cannot be in an IN"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE t.a IN (t.b)", "expected a literal"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE t.a IS NOT 3", "expected NULL after IS NOT"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE", "expected a column, a literal or an aggregate"),
    ("PREDICT COUNT(t.c, 0, 1, days) FOR EACH t.id WHERE LIST_DISTINCT(t.c, -1, 0, days) = 1",
     "LIST_DISTINCT can only be a target"),
])
def test_syntax_errors(text, message):
    assert message in error(text).message


def test_error_attributes_and_pickle():
    e = error("PREDICT")
    assert isinstance(e, ValueError)
    assert (e.position, e.query) == (7, "PREDICT")
    again = pickle.loads(pickle.dumps(e))
    assert (again.message, again.position, again.query, str(again)) == (e.message, 7, "PREDICT", str(e))


def test_caret_on_long_and_multiline_queries():
    long_text = BASE + " WHERE " + " AND ".join(["households.age > 1"] * 20) + " AND households.age >"
    e = error(long_text)
    line, caret = str(e).splitlines()[-2:]
    assert line.startswith("  ...") and caret.index("^") < 110
    assert line[caret.index("^"):] == ""  # caret sits just past the end of the text
    multi = "PREDICT COUNT(t.c, 0, 1, days)\nFOR EACH t.id\nWHERE t.a ~ 1"
    e = error(multi)
    assert str(e).splitlines()[-2:] == ["  WHERE t.a ~ 1", "            ^"]


def test_query_equality_ignores_positions_and_text():
    assert parse(BASE) == parse("  " + BASE.lower())
    assert isinstance(parse(BASE), Query)
