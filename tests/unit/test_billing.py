"""The billed-token model on examples small enough to check by hand."""

from __future__ import annotations

import pytest

from benchmarks.billing import Turn, bill, code_mode_turns, direct_turns


def test_two_direct_calls_by_hand() -> None:
    # Definitions 100; call 1 costs 10 and returns 50; call 2 costs 20 and returns 30; the answer is 5.
    turns = direct_turns(100, [(10, 50), (20, 30)], 5)
    assert turns == [Turn(100, 10), Turn(50, 20), Turn(30, 5)]
    billed = bill(turns)
    # Inputs: 100, then 100+10+50 = 160, then 160+20+30 = 210.
    assert billed.input == 100 + 160 + 210
    assert billed.output == 10 + 20 + 5
    # A prefix cache covers each earlier input: uncached is 100, then 10+50, then 20+30.
    assert billed.uncached_input == 100 + 60 + 50
    assert billed.final_context == 215
    assert billed.turns == 3


def test_code_mode_by_hand() -> None:
    # Description 40; a describe() call of 8 reads 60; the program is 25 and prints 7; the answer is 5.
    turns = code_mode_turns(40, [(8, 60)], 25, 7, 5)
    assert turns == [Turn(40, 8), Turn(60, 25), Turn(7, 5)]
    billed = bill(turns)
    assert billed.input == 40 + (40 + 8 + 60) + (108 + 25 + 7)
    assert billed.output == 38
    assert billed.uncached_input == 40 + 68 + 32
    assert billed.final_context == 145
    assert bill(code_mode_turns(40, [], 25, 7, 5)).turns == 2
    # Two describe calls as MCP tools: a turn each; the first result comes in with the second call's turn.
    assert code_mode_turns(40, [(8, 30), (9, 20)], 25, 7, 5) == [Turn(40, 8), Turn(30, 9), Turn(20, 25), Turn(7, 5)]


def test_bad_turns_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one turn"):
        bill([])
    with pytest.raises(ValueError, match="non-negative"):
        bill([Turn(-1, 0)])
