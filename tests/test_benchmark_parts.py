"""The benchmarks' own parts still run against today's library (nothing else runs them between benchmark
runs): the before-explorer and the old-monitor explorer of bench_widgets.py take every control, and
bench_notebooks.py's reference monitor records the library monitor's numbers."""

import pytest

from benchmarks.bench_notebooks import same_numbers
from benchmarks.bench_widgets import OldMonitorExplorer
from benchmarks.explorer_before import before_explorer
from course_lib import widgets


@pytest.mark.parametrize("make", [before_explorer, lambda **s: OldMonitorExplorer(**s),
                                  widgets.gradient_flow_explorer], ids=["before", "old monitor", "now"])
def test_every_benchmarked_explorer_takes_every_control(make):
    explorer = make(depth=6, width=16)
    for change in ({"depth": 7}, {"weight_scale": 1.5}, {"seed": 3}, {"seed": 2}):
        explorer.update(**change)
        assert explorer.last["depth"] == 7 and explorer.last["summary"].endswith(("vanishing", "exploding",
                                                                                  "healthy"))


def test_the_reference_monitor_records_the_same_numbers():
    assert same_numbers(4, 16, 32, steps=2) < 1e-5
