"""The README's speed table is the rendering of ``benchmarks/results/speed.json``, and the figures in it are
medians over runs with their spread and same-run baselines (``benchmarks/readme.py``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from benchmarks import readme


def test_the_readme_table_is_generated_from_the_results() -> None:
    speed = json.loads(readme.RESULTS.read_text(encoding="utf-8"))
    text = readme.README.read_text(encoding="utf-8")
    assert readme.render(speed) in text, "rerun `python -m benchmarks.readme --render` (or measure again)"
    assert speed["runs"] >= 3 and len(speed["raw"]) == speed["runs"]
    assert speed["rows"] == readme.summarize(speed["raw"])  # the summary is of the raw runs kept beside it
    assert f"`{speed['commit']}`" in text


def test_each_figure_is_the_median_of_the_runs_with_its_range() -> None:
    runs = [
        [{"metric": "m", "value": v, "unit": "ms", "baseline": "b", "baseline_value": b, "target": "≤ 1 ms"}]
        for v, b in ((3.0, 30.0), (1.0, 10.0), (2.0, 50.0))
    ]
    (row,) = readme.summarize(runs)
    assert (row["median"], row["min"], row["max"]) == (2.0, 1.0, 3.0)
    assert row["baseline_spread"] == {"median": 30.0, "min": 10.0, "max": 50.0}
    speed = {"runs": 3, "commit": "abc", "date": "d", "smoke": False, "env": {"python": "3", "cpus": 2}, "rows": [row]}
    assert "| m | 2.00 ms (1.00–3.00) | b: 30.0 ms (10.0–50.0) | ≤ 1 ms |" in readme.render(speed)


def test_a_metric_missing_from_a_run_is_an_error() -> None:
    row = {"metric": "m", "value": 1.0, "unit": "ms", "baseline": None, "baseline_value": None, "target": "—"}
    with pytest.raises(ValueError, match="'m' is missing from some runs"):
        readme.summarize([[row], []])


def test_rewrite_replaces_only_the_table() -> None:
    before = f"intro\n{readme.BEGIN}\nold\n{readme.END}\noutro\n"
    table = f"{readme.BEGIN}\nnew\n{readme.END}"
    assert readme.rewrite(before, table) == f"intro\n{table}\noutro\n"
    with pytest.raises(ValueError, match="no generated speed table"):
        readme.rewrite("no markers", "x")


def test_figures_compared_with_each_other_are_sampled_interleaved_in_a_rotating_order() -> None:
    # The overhead is a difference of two medians: each turn times every function in a short run of calls, the first of
    # the turn rotating, so neither is always measured first nor in another stretch of the run.
    import anyio

    from benchmarks import speed

    order: list[str] = []

    def timed(name: str) -> Callable[[], Awaitable[None]]:
        async def fn() -> None:
            order.append(name)

        return fn

    medians = anyio.run(lambda: speed.p50s([timed("a"), timed("b"), timed("c")], 5, block=2))
    assert "".join(order) == "aabbcc" "bbccaa" "cab"  # turns of two calls; the last turn holds what is left
    assert len(medians) == 3 and all(isinstance(m, float) and m >= 0 for m in medians)
