"""Explorers, driven from code: every explorer in course_lib.widgets, and the gradient-flow one against the monitor.

Each factory (a module-level ``*_explorer`` function) is found, built with its
defaults and driven through every control. The gradient-flow explorer's
numbers are checked against a fresh `build_mlp` + `GradientMonitor` run;
the chain explorer's against factor^depth. Responsiveness is checked too:
no figure or memory growth over 200 updates, bursts of front-end events
coalesced into the latest value, errors shown instead of killing the thread.
"""

import base64
import gc
import importlib
import inspect
import io
import math
import pkgutil
import re
import threading
import time

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import widgets
from course_lib.widgets import gradient_flow
from course_lib.models import build_mlp
from course_lib.monitoring import GradientMonitor
from course_lib.seeding import flush_denormals, flushing_denormals

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FACTORIES = sorted(name for name in widgets.__all__ if name.endswith("_explorer"))


def test_every_explorer_class_has_a_factory():
    classes = set()
    for module in pkgutil.iter_modules(widgets.__path__):  # every module of the package, exported or not
        members = inspect.getmembers(importlib.import_module(f"{widgets.__name__}.{module.name}"), inspect.isclass)
        classes |= {cls for _, cls in members if issubclass(cls, widgets.Explorer) and cls is not widgets.Explorer}
    made = set()
    for name in FACTORIES:
        hint = inspect.signature(getattr(widgets, name)).return_annotation
        made.add(getattr(widgets, hint) if isinstance(hint, str) else hint)
    assert {"chain_explorer", "gradient_flow_explorer"} <= set(FACTORIES)
    assert classes <= made, f"explorer classes without a factory: {sorted(c.__name__ for c in classes - made)}"


def other_value(control):
    """A valid value of `control` different from its current one (what a student might pick)."""
    if hasattr(control, "options") and not hasattr(control, "min"):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return next(v for v in values if v != control.value)
    if isinstance(control.value, bool):
        return not control.value
    if hasattr(control, "min"):
        step = control.step or 1
        up = control.value + 3 * step
        value = up if up <= control.max else control.value - 3 * step
        value = min(max(value, control.min), control.max)
        return type(control.value)(round(value, 10))
    raise AssertionError(f"do not know how to move a {type(control).__name__}")


def sweep(control, count):
    """`count` values of a control, spread over its range (repeating when it has fewer)."""
    if hasattr(control, "options") and not hasattr(control, "min"):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
    elif isinstance(control.value, bool):
        values = [True, False]
    else:
        step = control.step or 1
        n = int(round((control.max - control.min) / step))
        picks = np.linspace(0, n, min(n + 1, count)).round().astype(int)
        values = [type(control.value)(round(control.min + k * step, 10)) for k in picks]
    return [values[i % len(values)] for i in range(count)]


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and not isinstance(a, str):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, float, int, np.floating)) and not isinstance(a, bool):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b


@pytest.fixture
def explorers():
    """Build explorers through this fixture: they are closed afterwards."""
    made = []

    def build(name, **settings):
        explorer = getattr(widgets, name)(**settings)
        made.append(explorer)
        return explorer
    yield build
    for explorer in made:
        explorer.close()


def png_size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


@pytest.mark.parametrize("name", FACTORIES)
def test_explorer_builds_with_a_figure_verdict_and_static_fallback(explorers, name):
    figures = plt.get_fignums()
    explorer = explorers(name)
    assert isinstance(explorer, widgets.Explorer)
    assert explorer.last, "compute returned no data"
    assert explorer.verdict.value.strip(), "no verdict"
    assert explorer.controls, "an explorer needs at least one control"
    width, height = png_size(explorer.png)
    assert (width, height) == explorer.canvas.get_width_height()
    # the page shows a PNG of the figure's size, with the moving curves drawn over it by the browser
    assert png_size(explorer.image.value) == (width, height)
    if explorer.curves.value:
        assert explorer.curves.value.startswith('<svg data-frame="') and "<path d=" in explorer.curves.value
        assert f'width="{width}" height="{height}"' in explorer.curves.value
        assert explorer.image.value != explorer.png, "the curves are in the SVG, not also in the PNG"
    else:
        assert explorer.image.value == explorer.png
    for part in (explorer.image, explorer.curves):
        assert part.layout.width == f"{width}px" and part.layout.height == f"{height}px"
    # Outside a widget front end (nbconvert, a script), the same output still shows the figure.
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == explorer.png
    assert type(explorer).__name__ in bundle["text/plain"]
    assert plt.get_fignums() == figures, "explorers must not create pyplot figures"
    assert explorer.timings.keys() == {"compute", "draw", "render"}


def shown(explorer) -> tuple[bytes, str]:
    """What the page gets: the PNG and the SVG drawn over it."""
    return explorer.image.value, explorer.curves.value


def svg_paths(svg: str) -> list[np.ndarray]:
    """The points of each path in an explorer's SVG, in pixels (markers and dashes aside)."""
    paths = []
    for d in re.findall(r'<path d="([^"]*)"', svg):
        if "h0" in d or "a" in d:  # markers
            continue
        paths.append(np.array(re.findall(r"(-?[\d.]+),(-?[\d.]+)", d), dtype=float))
    return paths


def test_the_browser_draws_the_lines_where_matplotlib_would(explorers):
    """The SVG's lines are matplotlib's lines in the PNG's pixels (log axes, NaN gaps), clipped to their axes."""
    explorer = explorers("gradient_flow_explorer")
    data = explorer.update(depth=12, activation="sigmoid")
    svg = explorer.curves.value
    width, height = explorer.canvas.get_width_height()
    lines = [line for ax in explorer._axes for line in ax.lines]
    paths = svg_paths(svg)
    assert len(paths) == len(lines) == 4
    for line, path in zip(lines, paths):
        xy = line.get_transform().transform(line.get_xydata())
        expected = np.column_stack([xy[:, 0], height - xy[:, 1]])
        expected = expected[np.isfinite(expected).all(axis=1)]
        np.testing.assert_allclose(path, expected, atol=0.06)
    assert svg.count('<svg x="') == 2, "one clip box per axes (the twin axes share one)"
    assert f'stroke="{widgets.base.OKABE_ITO[0].lower()}"' in svg and "stroke-dasharray" in svg
    # the curve moves with the data
    explorer.update(weight_scale=2.0)
    assert not np.allclose(svg_paths(explorer.curves.value)[0], paths[0])
    assert data["depth"] == 12


@pytest.mark.parametrize("name", FACTORIES)
def test_every_control_changes_data_and_figure(explorers, name):
    explorer = explorers(name)
    start, start_png, start_values, start_shown = explorer.last, explorer.png, explorer.values, shown(explorer)
    for control_name, control in explorer.controls.items():
        value = other_value(control)
        data = explorer.update(**{control_name: value})
        assert explorer.controls[control_name].value == value
        assert data is explorer.last
        assert not same(data, start), f"{control_name} = {value!r} changed nothing in the data"
        assert explorer.png != start_png, f"{control_name} = {value!r} did not change the figure"
        assert shown(explorer) != start_shown, f"{control_name} = {value!r} did not change what the page shows"
        explorer.update(**start_values)
        assert same(explorer.last, start), f"setting {control_name} back did not give the same data"
    assert explorer.values == start_values
    with pytest.raises(ValueError, match="unknown controls"):
        explorer.update(no_such_control=1)


@pytest.mark.parametrize("name", FACTORIES)
def test_a_control_changed_from_code_refreshes_at_once(explorers, name):
    explorer = explorers(name)
    control_name, control = next(iter(explorer.controls.items()))
    refreshes = explorer.refreshes
    control.value = other_value(control)
    assert explorer.refreshes == refreshes + 1
    assert explorer.last is explorer._compute_cached(explorer.values)


def plotted(figure) -> int:
    """Lines, bars, texts, collections and images drawn on the figure's axes."""
    return sum(len(ax.lines) + len(ax.patches) + len(ax.texts) + len(ax.collections) + len(ax.images)
               for ax in figure.axes)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.slow
@pytest.mark.parametrize("name", FACTORIES)
def test_no_figure_or_memory_growth_over_200_updates(explorers, name):
    """200 updates; values cycle through 8 settings and the cache is cleared every 50, so 40 are computed."""
    explorer = explorers(name)
    control_name, control = next((n, c) for n, c in explorer.controls.items() if hasattr(c, "min"))
    values = sweep(control, 8) * 33
    for value in values[:64]:  # warm up: caches fill, allocator settles
        explorer.update(**{control_name: value})
    explorer._frames.clear()  # draw the first setting (a cached figure would skip drawing)
    explorer.update(**{control_name: values[0]})
    gc.collect()
    artists, axes, children = (plotted(explorer.figure), len(explorer.figure.axes),
                               len(explorer.widget.children))
    memory, figures = rss_bytes(), plt.get_fignums()
    for count, value in enumerate(values[64:264]):
        if count % 50 == 0:
            explorer.clear_cache()
        explorer.update(**{control_name: value})
    explorer._frames.clear()
    explorer.update(**{control_name: values[0]})
    gc.collect()
    assert len(explorer.figure.axes) == axes and len(explorer.widget.children) == children
    # the same setting as at the start: as many lines, bars and texts (tick objects, which
    # matplotlib keeps for the largest tick count seen, are not what piles up)
    assert plotted(explorer.figure) <= artists, "artists pile up on the figure"
    assert plt.get_fignums() == figures
    assert len(explorer._cache) <= explorer.cache_size
    growth = rss_bytes() - memory
    assert growth < 40e6, f"memory grew by {growth / 1e6:.0f} MB over 200 updates"


@pytest.mark.slow
def test_gradient_flow_no_growth_over_200_computed_updates(explorers):
    explorer = explorers("gradient_flow_explorer")
    explorer.cache_size = 0  # every update builds, runs and draws
    scales = [float(s) for s in np.linspace(0.5, 2.0, 31)]
    settings = [{"weight_scale": scales[i % 31], "seed": i % 5, "depth": 15 + i % 11} for i in range(240)]
    for values in settings[:40]:
        explorer.update(**values)
    gc.collect()
    artists, memory = len(explorer.figure.findobj()), rss_bytes()
    for values in settings[40:]:
        explorer.update(**values)
    gc.collect()
    assert len(explorer.figure.findobj()) <= artists * 1.5 + 50
    assert len(explorer._networks) <= 3 and len(explorer._batches) <= 4
    assert len(explorer._backgrounds) <= 8 and len(explorer._static_pngs) <= 8
    growth = rss_bytes() - memory
    assert growth < 20e6, f"memory grew by {growth / 1e6:.0f} MB over 200 computed updates"


# -- the gradient-flow explorer against the monitor ---------------------------------------

SETTINGS = [
    {},
    {"depth": 30, "activation": "sigmoid"},
    {"activation": "relu", "init": "he", "depth": 12, "width": 32},
    {"activation": "leaky_relu", "init": "xavier", "weight_scale": 1.7, "seed": 3},
    {"activation": "gelu", "init": "orthogonal", "norm": "batch", "residual": True},
    {"activation": "tanh", "init": "small_normal", "norm": "layer", "depth": 8},
    {"seed": 7, "weight_scale": 1.3},  # the cached network re-initialized for another seed, then rescaled
]


def reference(settings: dict, batch_size=widgets.GradientFlowExplorer.batch_size, num_classes=10) -> GradientMonitor:
    """The same measurement done by hand: a fresh build_mlp, the same batch, one monitored pass."""
    s = {**widgets.GradientFlowExplorer.defaults, **settings}
    generator = torch.Generator().manual_seed(s["seed"])
    X = torch.randn(batch_size, s["width"], generator=generator)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator)
    net = build_mlp(s["depth"], s["width"], activation=s["activation"], init=s["init"],
                    norm=None if s["norm"] == "none" else s["norm"], residual=s["residual"],
                    out_features=num_classes, weight_scale=s["weight_scale"], seed=s["seed"])
    with flush_denormals(), GradientMonitor(net) as monitor:  # as the explorer computes
        torch.nn.functional.cross_entropy(net(X), y).backward()
    return monitor


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_gradient_flow_matches_a_fresh_network_and_monitor(explorers, settings):
    explorer = explorers("gradient_flow_explorer")
    explorer.update(weight_scale=0.6)  # the cached network is rescaled, not rebuilt: must not matter
    data = explorer.update(**{**widgets.GradientFlowExplorer.defaults, **settings})
    monitor = reference(settings)
    shown = widgets.GradientFlowExplorer.fraction(data["activation"])  # the fraction plotted is measured
    for key, metric in (("grad_norms", "grad_norm"), ("out_grad_norms", "out_grad_norm"),
                        ("act_std", "act_std"), ("act_mean", "act_mean"), (shown, shown)):
        np.testing.assert_allclose(data[key], monitor.latest(metric), rtol=1e-5, atol=1e-12, err_msg=key)
    assert np.isnan(data["dead" if shown == "saturated" else "saturated"]).all(), "the other is not measured"
    # The verdict is the monitor's diagnosis: its ratio when it finds vanishing/exploding, else ||dL/dW||'s.
    grads, flow = monitor.latest("grad_norm"), monitor.latest("out_grad_norm")
    finding = next((f for f in monitor.diagnose() if f.kind in ("vanishing", "exploding")), None)
    expected = finding.kind if finding else "healthy"
    ratio = finding.value if finding else grads[0] / grads[-1]
    if ratio == 0:  # a norm underflowed to 0 in float32: the other one is quoted, if it did not
        ratio = min([r for r in (grads[0] / grads[-1], flow[0] / flow[-1]) if r > 0], default=0.0)
    if not finding:
        assert 1e-2 <= ratio <= 1e2
    assert data["kind"] == expected
    assert data["ratio"] == pytest.approx(ratio, rel=1e-5)
    assert f": <b>{expected}</b>" in explorer.verdict.value
    if ratio > 0:
        assert f"<b>{widgets.format_ratio(ratio)}</b>" in explorer.verdict.value
    else:
        assert "underflow" in explorer.verdict.value
    assert len(data["grad_norms"]) == data["depth"]


@pytest.mark.parametrize("settings", SETTINGS[:5] + [{"depth": 50, "width": 256}, {"activation": "relu", "init": "he"}],
                         ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_gradient_flow_shows_at_its_batch_what_256_examples_show(settings):
    """The explorer's batch (128) is a sample: same verdict and first/last ratio within a factor 2 of 256's."""
    ours, full = (widgets.GradientFlowExplorer(batch_size=size, **settings) for size in (None, 256))
    try:
        assert ours.batch_size < full.batch_size == 256
        assert ours.last["kind"] == full.last["kind"]
        assert abs(math.log10(ours.last["ratio"] / full.last["ratio"])) < math.log10(2)
    finally:
        ours.close()
        full.close()


def test_gradient_flow_verdicts_span_the_three_cases(explorers):
    explorer = explorers("gradient_flow_explorer")
    assert explorer.update(depth=30, activation="sigmoid", init="default")["kind"] == "vanishing"
    assert explorer.update(activation="relu", init="he", norm="batch", residual=True)["kind"] == "healthy"
    data = explorer.update(activation="relu", init="he", norm="none", residual=True, weight_scale=3.0, depth=50)
    assert data["kind"] in ("exploding", "non-finite")
    assert data["kind"] in explorer.verdict.value
    # depth 40: layer 1 gets ~1e-34 of the gradient, measured (float32 holds it; its square would not)
    data = explorer.update(activation="sigmoid", init="default", norm="none", residual=False, weight_scale=1.0,
                           depth=40)
    assert 0 < data["ratio"] < 1e-30 and (data["grad_norms"] > 0).all()
    explorer.update(depth=50)  # below float32's smallest normal (1.2e-38): flushed to 0
    assert explorer.verdict.value.startswith("layer 1 receives <b>0</b>")  # float32 underflow, said so...
    assert "underflow" in explorer.verdict.value and "<b>vanishing</b>" in explorer.verdict.value
    grads = explorer.last["grad_norms"]  # ...with the first layer whose gradient norm is still > 0
    first = int(np.flatnonzero(grads > 0)[0])
    assert f"layer {first + 1} receives {widgets.format_ratio(grads[first] / grads[-1])})" in explorer.verdict.value
    data = explorer.update(depth=10)
    assert 0 < data["ratio"] < 1e-2
    assert explorer.verdict.value == (f"layer 1 receives <b>{widgets.format_ratio(data['ratio'])}</b> of the last "
                                      "layer's gradient: <b>vanishing</b>")


@pytest.mark.parametrize("flush", [False, True])
def test_gradient_flow_does_not_depend_on_the_threads_denormal_mode(explorers, flush):
    torch.set_flush_denormal(flush)  # set_seed and train leave it on; a fresh kernel has it off
    explorer = explorers("gradient_flow_explorer")
    data = explorer.update(activation="sigmoid", init="default", depth=45)
    assert data["grad_norms"][0] == 0 and data["grad_norms"][-1] > 0  # flushed while computing...
    assert flushing_denormals() == flush  # ...and the mode is restored
    torch.set_flush_denormal(True)


def test_gradient_flow_leaves_global_state_alone(explorers):
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    explorer = explorers("gradient_flow_explorer")
    explorer.update(seed=5, depth=7)
    assert torch.equal(torch.get_rng_state(), state), "the explorer consumed the student's random numbers"
    assert torch.get_num_threads() == threads


def test_gradient_flow_show_picks_controls_and_fixes_the_rest(explorers):
    explorer = explorers("gradient_flow_explorer", show=["depth", "weight_scale"], activation="sigmoid", width=32)
    assert list(explorer.controls) == ["depth", "weight_scale"]
    assert explorer.last["activation"] == "sigmoid" and explorer.last["width"] == 32
    with pytest.raises(ValueError, match="unknown controls"):
        widgets.gradient_flow_explorer(show=["depth", "colour"])
    with pytest.raises(ValueError, match="unknown settings"):
        widgets.gradient_flow_explorer(colour="red")


def test_gradient_flow_reuses_batch_and_network(explorers, monkeypatch):
    explorer = explorers("gradient_flow_explorer")
    built = []
    real = gradient_flow.build_mlp
    monkeypatch.setattr(gradient_flow, "build_mlp", lambda *a, **k: built.append(a) or real(*a, **k))
    explorer.update(weight_scale=1.5)
    explorer.update(weight_scale=0.5)
    assert built == [], "a weight-scale change must not rebuild the network"
    explorer.update(seed=4)
    assert built == [], "a seed change re-initializes the cached network"
    explorer.update(depth=25)
    assert built == [], "a depth change grows the cached network of another depth"
    batch = explorer._batch(64, 0)
    explorer.update(activation="relu")
    assert len(built) == 1
    assert explorer._batch(64, 0)[0] is batch[0], "the batch is made once per (width, seed)"


def test_gradient_flow_network_is_build_mlps_after_any_changes():
    """Re-initialized, rescaled, grown or cut in the cache: after every change of a random walk over the
    controls the network is the one build_mlp makes for the settings (every weight and bias)."""
    explorer = widgets.GradientFlowExplorer(width=16)
    rng = np.random.default_rng(0)
    choices = {"depth": range(1, 13), "seed": range(4), "weight_scale": [0.5, 1.0, 1.5], "norm": ["none", "batch"],
               "activation": ["tanh", "relu"], "init": ["default", "he"], "residual": [False, True]}
    s = {**explorer.defaults, "width": 16}
    for _ in range(60):
        name = rng.choice(list(choices))
        s[name] = choices[name][rng.integers(len(choices[name]))]
        net = explorer._network(s)
        expected = build_mlp(s["depth"], 16, activation=s["activation"], init=s["init"],
                             norm=None if s["norm"] == "none" else s["norm"], residual=s["residual"],
                             out_features=explorer.num_classes, weight_scale=s["weight_scale"], seed=s["seed"])
        got, want = net.state_dict(), expected.state_dict()
        assert got.keys() == want.keys()
        for key in want:
            if "running" not in key and "num_batches" not in key:  # BatchNorm's running statistics are unused
                assert torch.equal(got[key], want[key]), (key, s)


def test_gradient_flow_figure_shows_the_data(explorers):
    explorer = explorers("gradient_flow_explorer")
    data = explorer.update(depth=12)
    grads_ax, acts_ax, fraction_ax = explorer._axes
    x, y = grads_ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(1, 13))
    np.testing.assert_allclose(y, data["grad_norms"])
    assert grads_ax.get_yscale() == "log" and acts_ax.get_yscale() == "log"
    low, high = grads_ax.get_ylim()
    assert low <= data["grad_norms"].min() and data["grad_norms"].max() <= high
    np.testing.assert_allclose(acts_ax.lines[0].get_data()[1], data["act_std"])


def test_format_ratio():
    assert widgets.format_ratio(3.2e-9) == "3e-9"
    assert widgets.format_ratio(0.45) == "0.45"
    assert widgets.format_ratio(32.0) == "32"
    assert widgets.format_ratio(2.4e4) == "2e+4"
    assert widgets.format_ratio(float("nan")) == "nan"


# -- the chain explorer against its formula --------------------------------------------------

@pytest.mark.parametrize("depth,factor", [(1, 0.25), (10, 0.25), (30, 0.5), (20, 1.5)])
def test_chain_explorer_matches_the_formula(explorers, depth, factor):
    explorer = explorers("chain_explorer")
    data = explorer.update(depth=depth, factor=factor)
    assert data["ratio"] == pytest.approx(factor ** depth, rel=1e-9)
    np.testing.assert_allclose(data["grad_norms"], factor ** (depth - np.arange(depth + 1)), rtol=1e-9)
    assert f"{data['ratio']:.1e}" in explorer.verdict.value


def test_without_browser_drawing_the_page_gets_the_whole_figure(explorers):
    explorer = explorers("chain_explorer")
    assert explorer.curves.value and explorer.image.value != explorer.png
    explorer.browser_draws = False  # as benchmarks/explorer_before.py: one PNG per change
    explorer.update(depth=13)
    assert explorer.curves.value == "" and explorer.image.value == explorer.png
    explorer.browser_draws = True
    explorer.figure.axes[0].lines[0].set_drawstyle("steps-mid")  # a line the SVG would not draw as Agg does
    explorer.update(depth=14)
    assert explorer.curves.value == "" and explorer.image.value == explorer.png


# -- responsiveness: coalescing, errors, caching -------------------------------------------

def front_end_sets(control, value):
    """What ipywidgets does when the browser sends a new value (a comm message)."""
    control.set_state({"value": value})


def test_a_burst_of_front_end_events_computes_only_the_latest(explorers):
    explorer = explorers("gradient_flow_explorer")
    computed = []
    compute = explorer.compute
    slow = threading.Event()

    def counting(**values):
        computed.append(values["depth"])
        slow.wait(0.2)  # a compute slower than the events, as on a busy machine
        return compute(**values)
    explorer.compute = counting
    start = time.perf_counter()
    for depth in range(21, 51):
        front_end_sets(explorer.controls["depth"], depth)
    assert time.perf_counter() - start < 1.0, "events must not wait for computations"
    assert explorer.wait(60)
    assert explorer.last["depth"] == 50 and computed[-1] == 50
    assert len(computed) <= 3, f"a burst of 30 events ran {len(computed)} computations: {computed}"


def test_front_end_events_refresh_in_the_background(explorers):
    explorer = explorers("chain_explorer")
    front_end_sets(explorer.controls["depth"], 17)
    assert explorer.wait(30)
    assert explorer.last["depth"] == 17 and "<sup>17</sup>" in explorer.verdict.value


def test_an_error_in_the_background_is_shown_and_the_thread_survives(explorers, capsys):
    explorer = explorers("chain_explorer")
    compute = explorer.compute

    def broken(**values):
        if values["depth"] == 13:
            raise RuntimeError("boom")
        return compute(**values)
    explorer.compute = broken
    front_end_sets(explorer.controls["depth"], 13)
    assert explorer.wait(30)
    assert "course-explorer-error" in explorer.verdict.value and "boom" in explorer.verdict.value
    front_end_sets(explorer.controls["depth"], 14)
    assert explorer.wait(30)
    assert explorer.last["depth"] == 14 and "course-explorer-error" not in explorer.verdict.value


def test_the_refresh_thread_works_ahead_while_idle_and_stops_for_a_change(explorers):
    """After a front-end change and a pause (the page paints), the refresh thread calls work_ahead piece
    by piece; a change arriving meanwhile is computed before any further piece, which then go on for
    the new values until work_ahead says it is done."""
    explorer = explorers("chain_explorer")
    pieces, done = [], threading.Event()

    def work_ahead():
        pieces.append((time.perf_counter(), explorer.last["depth"]))
        if len(pieces) == 3:
            front_end_sets(explorer.controls["depth"], 19)  # a change arrives mid-work
        if len(pieces) == 8:
            done.set()
        return len(pieces) < 8
    explorer.work_ahead = work_ahead
    explorer.update(depth=12)
    time.sleep(0.4)
    assert pieces == [], "a change made from code does not work ahead"
    front_end_sets(explorer.controls["depth"], 17)
    start = time.perf_counter()
    assert done.wait(30) and explorer.wait(30)
    assert pieces[0][0] - start >= 0.2, "the page gets a moment to paint first"
    assert [depth for _, depth in pieces] == [17] * 3 + [19] * 5, "the change stopped the work ahead"
    time.sleep(0.4)
    assert len(pieces) == 8, "work_ahead returned False: nothing more until the next change"


def test_gradient_flow_works_ahead_on_the_next_seed(explorers, monkeypatch):
    """work_ahead draws the seed one step on (in the last step's direction) into a copy of the network;
    the step swaps it in without drawing, at any weight scale; the network stays build_mlp's."""
    explorer = explorers("gradient_flow_explorer", depth=6, width=16)
    draws = []
    real = gradient_flow.initialize_
    monkeypatch.setattr(gradient_flow, "initialize_",
                        lambda module, *a, **k: draws.append(module) or real(module, *a, **k))

    def settled(**values) -> None:
        explorer.update(**values)
        while explorer.work_ahead():
            pass

    def assert_built() -> None:
        s = {**explorer.fixed, **explorer.values}
        expected = build_mlp(s["depth"], 16, activation=s["activation"], init=s["init"],
                             out_features=explorer.num_classes, weight_scale=s["weight_scale"], seed=s["seed"])
        for key, value in expected.state_dict().items():
            assert torch.equal(explorer._network(s).state_dict()[key], value), key

    settled(seed=3)
    # (seed, weight scale, swapped in?): steps up, one at another scale, a reversal (drawn), steps down
    for seed, scale, swapped in ((4, 1.0, True), (5, 1.0, True), (6, 1.6, True), (5, 1.6, False), (4, 1.6, True),
                                 (3, 1.0, True)):
        draws.clear()
        explorer.update(seed=seed, weight_scale=scale)
        assert any(isinstance(m, gradient_flow.MLP) for m in draws) != swapped, (seed, scale)
        assert_built()
        while explorer.work_ahead():
            pass
    draws.clear()
    explorer.update(seed=40)  # a jump: drawn as before
    assert any(isinstance(m, gradient_flow.MLP) for m in draws)
    assert_built()


def test_results_are_cached_per_setting(explorers):
    explorer = explorers("chain_explorer")
    calls, renders = [], []
    compute, frame = explorer.compute, explorer._frame
    explorer.compute = lambda **v: calls.append(v) or compute(**v)
    explorer._frame = lambda: renders.append(1) or frame()
    first = explorer.update(depth=12)
    png, page = explorer.png, shown(explorer)
    explorer.update(depth=13)
    again = explorer.update(depth=12)
    assert again is first and len(calls) == 2
    assert shown(explorer) == page, "the figure is cached too"
    assert len(renders) == 2, "a cached setting must not be drawn again"
    assert explorer.png == png, "the saved copy shows the cached setting (the figure is drawn again for it)"
    explorer.clear_cache()
    explorer.update(depth=12)
    assert len(calls) == 3


@pytest.mark.parametrize("name", FACTORIES)
def test_redraw_in_place_matches_a_full_redraw(explorers, name):
    """Blitting and reused artists must show exactly what drawing from scratch shows."""
    explorer = explorers(name)
    control_name, control = next(iter(explorer.controls.items()))
    explorer.update(**{control_name: other_value(control)})
    incremental = explorer.png
    positions = [ax.get_position().bounds for ax in explorer.figure.axes]
    views = [(ax.get_xlim(), ax.get_ylim()) for ax in explorer.figure.axes]
    explorer._drawn, explorer._layout_key = False, None  # force clear + draw + a fresh layout
    explorer._frames.clear()
    explorer.refresh()
    # The layout is kept while the y tick labels keep their width: it may be off by a pixel or two...
    width, height = explorer.canvas.get_width_height()
    scale = np.array([width, height, width, height])
    for before, ax in zip(positions, explorer.figure.axes):
        shift = np.abs((np.array(before) - np.array(ax.get_position().bounds)) * scale).max()
        assert shift < 3, f"the kept layout is {shift:.1f} px off the fresh one"
    # ...and with the same layout and the same view (axis ranges may be kept from earlier steps),
    # both show the same pixels.
    for before, (xlim, ylim), ax in zip(positions, views, explorer.figure.axes):
        ax.set_position(before)
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
    explorer._backgrounds.clear()
    difference = np.abs(np.asarray(Image.open(io.BytesIO(incremental)), dtype=int)
                        - np.asarray(Image.open(io.BytesIO(explorer._render())), dtype=int))
    assert difference.mean() < 0.2, f"in-place redraw differs from a full redraw (mean {difference.mean():.2f})"


def test_explorers_stay_fast(explorers):
    """Not a benchmark (benchmarks/bench_widgets.py is): catches a change that makes updates 10x slower."""
    explorer = explorers("gradient_flow_explorer")
    cpu = []
    for scale in np.linspace(0.5, 1.5, 11):
        start = time.process_time()
        explorer.update(weight_scale=float(scale))
        cpu.append(time.process_time() - start)
    assert math.isfinite(np.median(cpu)) and np.median(cpu) < 0.5, f"median CPU per update {np.median(cpu):.3f} s"


# -- outside a widget front end: executed notebooks keep a static figure ---------------------

def _notebooks_with_explorers() -> list[str]:
    from autograder.build import read_source
    from conftest import NAMES
    from jupyterlab_session import explorer_cells

    return [name for name in NAMES if explorer_cells(read_source(name)[0])]


@pytest.mark.slow
@pytest.mark.parametrize("name", _notebooks_with_explorers())
def test_executed_explorer_cells_carry_a_static_figure(executed, name):
    """nbconvert/nbclient output of each explorer cell: the widget view, then the saved copy of its figure."""
    from autograder.build import read_source
    from jupyterlab_session import explorer_cells

    run = executed(name)
    assert not run.errors, run.errors
    for index in explorer_cells(read_source(name)[0]):
        outputs = [o["data"] for o in run.nb.cells[index].outputs if o.get("output_type") in ("display_data",
                                                                                             "execute_result")]
        views = [i for i, data in enumerate(outputs) if "application/vnd.jupyter.widget-view+json" in data]
        assert views, f"{name}: cell {index} displays no explorer"
        for view in views:
            assert view + 1 < len(outputs), f"{name}: cell {index} has no saved copy after its explorer"
            copy = outputs[view + 1].get("text/html", "")
            assert 'class="course-explorer-static"' in copy, f"{name}: cell {index}: {copy[:200]!r}"
            width, height = png_size(static_png(copy))
            assert width > 200 and height > 100


def static_png(html_copy: str) -> bytes:
    match = re.search(r'<img src="data:image/png;base64,([^"]+)"', html_copy)
    assert match, "the saved copy has no figure"
    return base64.b64decode(match.group(1))


# -- shown in a notebook: the live widget, then a saved copy for when the widget model is gone ---------

def test_displayed_in_a_notebook_it_writes_the_widget_then_a_saved_copy(explorers):
    from IPython.core.interactiveshell import InteractiveShell

    explorer = explorers("chain_explorer")
    explorer.update(depth=12)
    published = []
    shell = InteractiveShell.instance()
    original = shell.display_pub.publish
    shell.display_pub.publish = lambda data, metadata=None, **kwargs: published.append(data)
    try:
        from IPython.display import display

        display(explorer)
    finally:
        shell.display_pub.publish = original
    assert len(published) == 2
    assert "application/vnd.jupyter.widget-view+json" in published[0]
    assert "image/png" not in published[0], "a second figure would show under the live explorer"
    copy = published[1]["text/html"]
    assert static_png(copy) == explorer.png, "the saved copy shows the figure as it is when displayed"
    assert explorer.title in copy and explorer.verdict.value in copy and widgets.STATIC_NOTE in copy
    assert ":has(.course-explorer)" in copy, "the copy hides itself while the live explorer is on the page"
    assert "ChainExplorer" in published[1]["text/plain"]


# -- readable at JupyterLab's default width (~850 px of output), ticks never at 2.5 layers -------------

def text_pixels(text, dpi) -> float:
    return text.get_fontsize() * dpi / 72


@pytest.mark.parametrize("name", FACTORIES)
def test_explorer_text_is_at_least_9_pt_and_the_figure_fits_the_page(explorers, name):
    from course_lib.plotting import MIN_TEXT_PX

    explorer = explorers(name)
    width, _ = explorer.canvas.get_width_height()
    assert width <= 800, f"{name}: {width} px wide does not fit JupyterLab's output area"
    explorer.canvas.draw()
    texts = []
    for ax in explorer.figure.axes:
        texts += [ax.xaxis.label, ax.yaxis.label, ax.title]
        texts += [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text() and t.get_visible()]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
    small = {t.get_text(): round(text_pixels(t, explorer.dpi), 1) for t in texts
             if t.get_text() and text_pixels(t, explorer.dpi) < MIN_TEXT_PX}
    assert not small, f"{name}: text under {MIN_TEXT_PX} px (9 pt) on screen: {small}"


LAYER_AXES = ("layer", "block", "time step")


@pytest.mark.parametrize("name", FACTORIES)
def test_layer_axes_have_whole_number_ticks(explorers, name):
    explorer = explorers(name)
    for settings in ({}, {"depth": 3} if "depth" in explorer.controls else {}):
        explorer.update(**settings)
        explorer.canvas.draw()
        for ax in explorer.figure.axes:
            if ax.get_xlabel().startswith(LAYER_AXES):
                low, high = sorted(ax.get_xlim())
                ticks = [t for t in ax.get_xticks() if low <= t <= high]
                assert ticks and all(float(t).is_integer() for t in ticks), f"{name}: {ax.get_xlabel()}: {ticks}"


def test_course_plots_use_readable_text_and_whole_layers():
    from course_lib.plotting import COURSE_RC, MIN_TEXT_PX, plot_gradient_norms, plot_layer_metric

    assert matplotlib.rcParams["font.size"] == COURSE_RC["font.size"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    try:
        plot_gradient_norms({"a": np.geomspace(1e-6, 1, 8), "b": np.ones(8)}, ax=left)
        plot_layer_metric(np.random.default_rng(0).random((7, 3)), ax=right)
        figure.canvas.draw()
        assert figure.get_dpi() * 9 <= 900, "a 9-inch figure fits JupyterLab's output area unscaled"
        for ax in (left, right):
            texts = ax.get_xticklabels() + ax.get_yticklabels() + ax.get_legend().get_texts()
            assert min(text_pixels(t, figure.get_dpi()) for t in texts) >= MIN_TEXT_PX
            assert all(float(t).is_integer() for t in ax.get_xticks())
    finally:
        plt.close(figure)


def test_recurrent_explorer_at_radius_one_stays_at_one(explorers):
    explorer = explorers("recurrent_explorer", radius=1.0, length=50)
    assert explorer.values["nonlinearity"] == "linear", "the notebook's prose has students start on the linear RNN"
    low, high = explorer.figure.axes[0].get_ylim()
    assert math.log10(high / low) >= 2.9, "rounding noise around 1 must not fill a log axis"
    ticks = [t for t in explorer.figure.axes[0].get_yticks() if low <= t <= high]
    assert len(ticks) >= 3
    assert "stays at 1" in explorer.verdict.value and "radius 1" in explorer.verdict.value
    assert "stays at 1" not in explorer.update(radius=0.9) and "stays at 1" not in explorer.verdict.value


def test_chain_explorer_legend_names_the_exponent_the_axis_counts(explorers):
    explorer = explorers("chain_explorer", depth=10, factor=0.25)
    ax = explorer.figure.axes[0]
    legend = ax.get_legend().get_texts()[1].get_text()
    assert "L - k" in legend and "factor" in legend
    assert "layer k" in ax.get_xlabel() and "L = depth" in ax.get_xlabel()
    k, values = ax.lines[1].get_data()
    assert np.allclose(values, 0.25 ** (10 - k)), "the dashed line is factor^(L - k)"


# -- every explorer moves its data in place (issue 16) ------------------------------------------------

# `first`: a value set before the steps (None: the steps start from the first figure, whose layer axis fits
# its layers exactly, so a depth step down keeps it and room comes with the first change)
@pytest.mark.parametrize("name, control, first, steps", [
    ("saturation_explorer", "weight_scale", 1.25, [1.5, 1.75]),
    ("recurrent_explorer", "length", 55, [60, 65]),
    ("activation_explorer", "bias", 0.1, [0.2, 0.3]),
    ("normalization_explorer", "depth", 11, [12, 13]),
    ("chain_explorer", "factor", None, [0.3]),
    ("chain_explorer", "depth", None, [9]),
    ("variance_explorer", "sigma_w2", None, [1.05]),
    ("variance_explorer", "depth", None, [29]),
    ("residual_explorer", "depth", None, [62]),
    ("transformer_explorer", "depth", None, [14]),
])
def test_small_steps_move_the_lines_and_keep_the_axes(explorers, name, control, first, steps):
    """A small step redraws in place and sends only the browser-drawn lines: the same axes, the same static PNG."""
    explorer = explorers(name)
    if first is not None:
        explorer.update(**{control: first})
    axes, generation, image = list(explorer.figure.axes), explorer._generation, explorer.image.value
    for value in steps:
        svg = explorer.curves.value
        explorer.update(**{control: value})
        assert explorer.figure.axes == axes and explorer._generation == generation, \
            f"{name}: {control} = {value} drew the figure anew"
        assert explorer.image.value == image, f"{name}: {control} = {value} changed the static part"
        assert explorer.curves.value != svg, f"{name}: {control} = {value} did not move the lines"


def test_bars_drawn_as_one_line_look_like_matplotlib_bars():
    """`Bars` (a line the browser can draw) covers what `Axes.bar` covers, up to the edges (log axis, a NaN gap)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from course_lib.widgets.bars import Bars
    from course_lib.widgets.svg import svg_line

    heights, images = np.array([3e-6, 2e-3, np.nan, 0.5, 0.02]), []
    for as_line in (False, True):
        figure = Figure(figsize=(4, 3), dpi=80)
        ax = figure.add_subplot(yscale="log", ylim=(1e-7, 1), xlim=(0.5, 5.5))
        if as_line:
            bars = Bars(ax, np.arange(1, 6), heights, bottom=1e-8, color="C0")
        else:
            ax.bar(np.arange(1, 6), heights, color="C0")
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba(), dtype=int)[..., :3])
    # only the edges may differ (a patch is snapped to whole pixels, the line is not, so that Agg and the
    # browser put its edges at the same fractional pixels): fewer pixels than half the bars' outlines
    corners = ax.transData.transform(np.column_stack([[0.6, 1.4] * 5, np.repeat(np.nan_to_num(heights, nan=1e-7), 2)]))
    outline = (2 * np.abs(np.diff(corners[:, 0])[::2]) + 2 * (corners[::2, 1] - ax.bbox.y0)).sum()
    differing = (np.abs(images[0] - images[1]).max(axis=2) > 60).sum()
    assert differing < outline / 2, f"{differing} pixels differ (the outlines have {outline:.0f})"
    svg = svg_line(bars, canvas.get_width_height()[1], 80 / 72)
    bar_pixels = ax.transData.transform([[1.4, 1]])[0, 0] - ax.transData.transform([[0.6, 1]])[0, 0]
    assert f'stroke-width="{bar_pixels:.2f}"' in svg and 'stroke-linecap="butt"' in svg
    assert svg.count("M") == 4, "one segment per bar with a height"


def test_decade_limits_keep_the_axes_while_the_data_fit():
    start = widgets.decade_limits(np.array([0.08, 0.21]))
    assert start == (1e-3, 1.0)
    # the data's own decade fits: kept, though three decades centred on it would not
    assert widgets.decade_limits(np.array([0.14, 0.21]), current=start) == start
    assert widgets.decade_limits(np.array([0.5, 3.0]), current=start) == (1e-3, 1e2), "out: a decade of room"
    assert widgets.decade_limits(np.array([0.1, 0.5]), current=(1e-9, 1.0)) == (1e-4, 10.0), "6 wasted decades"


# -- the residual and transformer explorers: switching the bold curve computes nothing (issue 16) -------

def test_switching_the_chosen_curve_computes_nothing_and_restyles_the_legend(explorers, monkeypatch):
    explorer = explorers("residual_explorer", depth=20)
    png = explorer.image.value
    monkeypatch.setattr(explorer, "_measure", lambda depth: pytest.fail(f"depth {depth} measured again"))
    explorer.update(architecture="residual")
    plain, residual = explorer.figure.axes[0].get_legend().legend_handles
    assert residual.get_marker() == "o" and plain.get_marker() == "None" and plain.get_alpha() < 1
    assert explorer.image.value != png, "the legend shows which curve is bold"
    explorer.clear_cache()  # drawn again, not a cached frame: the same PNG as before
    explorer.update(architecture="plain")
    assert explorer.image.value == png
