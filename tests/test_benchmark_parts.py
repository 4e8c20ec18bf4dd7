"""The benchmarks' own parts still run against today's library (nothing else runs them between benchmark
runs): the before-explorer and the old-monitor explorer of bench_widgets.py take every control, and
bench_notebooks.py's reference monitor records the library monitor's numbers, and its arithmetic floor
reduces a real step's tensors."""

import pytest

from benchmarks.bench_notebooks import reductions_alone, same_numbers, step_tensors
from benchmarks.bench_widgets import OldMonitorExplorer
from benchmarks.host import fresh_import_s, reference_step_ms, speed_note
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


def test_the_arithmetic_floor_reduces_one_step_s_tensors():
    tensors = step_tensors(3, 8, 16)
    assert [len(tensors[kind]) for kind in ("acts", "outs", "weights", "grads")] == [3, 3, 3, 3]
    assert all(t is not None and t.shape == w.shape for t, w in zip(tensors["grads"], tensors["weights"]))
    assert all(a.shape == g.shape for a, g in zip(tensors["acts"], tensors["outs"]))
    assert all(seconds > 0 for seconds in reductions_alone(3, 8, 16, repeats=2))


def test_the_host_probe_times_a_step_and_a_fresh_import():
    step, imports = reference_step_ms(seconds=0.05), fresh_import_s(repeats=1)
    assert 0 < step < 1000 and 0 < imports < 120
    note = speed_note((step, imports), (2 * step, imports))
    assert note.startswith("Host speed") and note.endswith("at the end.")
    assert f"{step:.2f} ms" in note and f"{2 * step:.2f} ms" in note
