"""The rules of a rebalance policy: each refusal is InvalidInput naming `policy.<field>`."""

from dataclasses import FrozenInstanceError
from decimal import Decimal
from typing import Any

import pytest

from order_generation.domain.errors import InvalidInput
from order_generation.domain.policy import DEFAULT_POLICY, Policy, check_policy

D = Decimal
A = "A" * 24
B = "B" * 24


def refused(**fields: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        Policy(**fields)
    return raised.value


def test_the_default_is_a_plain_full_rebalance() -> None:
    policy = Policy()
    assert policy == DEFAULT_POLICY
    assert (policy.mode, policy.bands) == ("full", "strict")
    assert policy.reserve(D(1000)) == 0
    assert not policy.sizes_trades
    assert policy.may_buy(A)
    assert policy.may_sell(A)
    assert policy.lot(A) == 1


@pytest.mark.parametrize("mode", ["full", "bands", "buy_only", "sell_only"])
@pytest.mark.parametrize("bands", ["strict", "best_effort"])
def test_every_mode_and_band_handling_is_accepted(mode: Any, bands: Any) -> None:
    assert (Policy(mode=mode, bands=bands).mode, Policy(mode=mode, bands=bands).bands) == (
        mode,
        bands,
    )


@pytest.mark.parametrize("mode", ["", "FULL", "partial", None, 1])
def test_an_unknown_mode_is_refused(mode: Any) -> None:
    error = refused(mode=mode)
    assert error.field == "policy.mode"
    assert "full, bands, buy_only, sell_only" in error.message


@pytest.mark.parametrize("bands", ["", "Strict", "loose", None])
def test_an_unknown_band_handling_is_refused(bands: Any) -> None:
    error = refused(bands=bands)
    assert error.field == "policy.bands"
    assert "strict, best_effort" in error.message


@pytest.mark.parametrize("name", ["min_cash", "withdraw", "min_trade_value", "min_cash_fraction"])
@pytest.mark.parametrize(
    "value", [D("-0.01"), D("NaN"), D("Infinity"), D("-Infinity"), D("sNaN"), 1.5, 1, "1", None]
)
def test_amounts_are_finite_decimals_of_at_least_0(name: str, value: Any) -> None:
    error = refused(**{name: value})
    assert error.field == f"policy.{name}"
    assert error.rule == "must be a decimal of at least 0"
    assert error.status == 400


@pytest.mark.parametrize("name", ["min_cash", "withdraw", "min_trade_value"])
def test_amounts_have_no_upper_limit(name: str) -> None:
    fields: dict[str, Any] = {name: D("1E+12")}
    assert getattr(Policy(**fields), name) == D("1E+12")


@pytest.mark.parametrize("value", [D("1.0001"), D(2)])
def test_the_cash_fraction_is_at_most_1(value: Decimal) -> None:
    error = refused(min_cash_fraction=value)
    assert error.field == "policy.min_cash_fraction"
    assert error.rule == "must be between 0 and 1"


@pytest.mark.parametrize("value", [D(0), D("0.05"), D(1)])
def test_cash_fractions_from_0_to_1_are_accepted(value: Decimal) -> None:
    assert Policy(min_cash_fraction=value).min_cash_fraction == value


@pytest.mark.parametrize("value", [-1, 1.0, D(1), "1", True, None])
def test_the_minimum_quantity_is_a_whole_number_of_at_least_0(value: Any) -> None:
    error = refused(min_trade_quantity=value)
    assert error.field == "policy.min_trade_quantity"
    assert error.rule == "must be a whole number of at least 0"


@pytest.mark.parametrize("value", [0, -5, 2.0, True, "10", None])
def test_the_round_lot_is_a_whole_number_of_at_least_1(value: Any) -> None:
    error = refused(round_lot=value)
    assert error.field == "policy.round_lot"
    assert error.rule == "must be a whole number of at least 1"


@pytest.mark.parametrize("lot", [0, -1, 2.5, False, "100"])
def test_each_lot_of_round_lots_is_a_whole_number_of_at_least_1(lot: Any) -> None:
    error = refused(round_lots={A: 100, B: lot})
    assert error.field == f"policy.round_lots.{B}"
    assert error.rule == "must be a whole number of at least 1"


@pytest.mark.parametrize("security_id", ["A" * 23, "A" * 25, "A" * 23 + "-", "", 7])
def test_round_lots_are_keyed_by_security_ids(security_id: Any) -> None:
    error = refused(round_lots={security_id: 10})
    assert error.field == "policy.round_lots"
    assert error.rule == "must be exactly 24 alphanumeric characters"


@pytest.mark.parametrize("name", ["no_buy", "no_sell", "hold"])
@pytest.mark.parametrize(
    "security_id",
    [
        "A" * 23,
        "A" * 25,
        "A" * 23 + " ",
        "",
        3,
    ],
)
def test_restriction_lists_hold_security_ids(name: str, security_id: Any) -> None:
    error = refused(**{name: [A, security_id]})
    assert error.field == f"policy.{name}"
    assert error.rule == "must be exactly 24 alphanumeric characters"


def test_the_first_rule_broken_is_reported() -> None:
    error = refused(mode="nope", round_lot=0)
    assert error.field == "policy.mode"


def test_a_policy_checked_elsewhere_names_its_place() -> None:
    policy = Policy()
    object.__setattr__(policy, "round_lot", 0)
    with pytest.raises(InvalidInput) as raised:
        check_policy(policy, "model.policy")
    assert raised.value.field == "model.policy.round_lot"


def test_restriction_lists_become_frozensets_and_round_lots_a_copy() -> None:
    lots = {A: 10}
    lists: dict[str, Any] = {"no_buy": [A, A], "no_sell": {B}, "hold": (A,)}
    policy = Policy(**lists, round_lots=lots)
    assert policy.no_buy == frozenset({A})
    assert policy.no_sell == frozenset({B})
    assert policy.hold == frozenset({A})
    lots[B] = 0
    assert policy.round_lots == {A: 10}


def test_a_policy_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        Policy().mode = "bands"  # type: ignore[misc]


def test_a_lot_per_security_overrides_the_round_lot() -> None:
    policy = Policy(round_lot=100, round_lots={A: 5})
    assert (policy.lot(A), policy.lot(B)) == (5, 100)


@pytest.mark.parametrize(
    ("fields", "sized"),
    [
        ({}, False),
        ({"round_lots": {A: 1}}, False),
        ({"round_lot": 2}, True),
        ({"round_lots": {A: 10}}, True),
        ({"min_trade_quantity": 1}, True),
        ({"min_trade_value": D("0.01")}, True),
    ],
)
def test_whether_trades_are_sized(fields: dict[str, Any], sized: bool) -> None:
    assert Policy(**fields).sizes_trades is sized


def test_restrictions_decide_which_way_a_security_may_trade() -> None:
    sell_only, buy_only = Policy(mode="sell_only"), Policy(mode="buy_only")
    assert (sell_only.may_buy(A), sell_only.may_sell(A)) == (False, True)
    assert (buy_only.may_buy(A), buy_only.may_sell(A)) == (True, False)
    policy = Policy(no_buy=frozenset({A}), no_sell=frozenset({B}))
    assert (policy.may_buy(A), policy.may_sell(A)) == (False, True)
    assert (policy.may_buy(B), policy.may_sell(B)) == (True, False)
    held = Policy(hold=frozenset({A}))
    assert (held.may_buy(A), held.may_sell(A), held.may_buy(B)) == (False, False, True)


def test_the_reserve_is_the_larger_of_the_amount_and_the_fraction() -> None:
    policy = Policy(min_cash=D(100), min_cash_fraction=D("0.05"))
    assert policy.reserve(D(1000)) == 100
    assert policy.reserve(D(4000)) == 200


def test_as_dict_gives_plain_sorted_values() -> None:
    policy = Policy(
        mode="bands",
        min_cash=D(5),
        no_buy=frozenset({B, A}),
        round_lots={B: 3, A: 2},
        bands="best_effort",
    )
    settings: dict[str, Any] = policy.as_dict()
    assert settings["no_buy"] == [A, B]
    assert list(settings["round_lots"]) == [A, B]
    assert settings["min_cash"] == D(5)
    assert Policy(**settings) == policy
