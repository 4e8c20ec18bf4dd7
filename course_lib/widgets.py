"""Interactive explorers: sliders that run a real network and redraw its gradients.

Every explorer is an `Explorer`: controls (ipywidgets), a `compute` step that
runs the network for the current values and returns plain data, a `draw`
step that plots that data on a matplotlib Figure kept by the explorer (never
pyplot's, so figures do not pile up), and a one-line verdict. The figure is
shown as a PNG in an ``ipywidgets.Image`` that is updated in place.

Explorers can be driven from code, which is how the tests check them::

    explorer = chain_explorer()
    data = explorer.update(depth=30, factor=0.5)   # recompute and redraw
    explorer.last, explorer.verdict.value, explorer.png

Displayed in a notebook, an explorer writes two outputs: the live widget and
a saved copy of its title, verdict and figure (`static_html`). JupyterLab
shows the copy only when the widget cannot be drawn (its model is gone after
a page reload or with a new kernel), in place of "Error displaying widget";
a front end without widgets (nbconvert, a script) shows the copy.

Text is readable at JupyterLab's default width: figures render at 80 dpi,
so the course's 11 pt text (`course_lib.plotting.COURSE_RC`) is 12 px or
more, and every figure is at most 800 px wide.

Why it feels instant (benchmarks/README.md, "Explorers", has the numbers):
- a slider change from the browser only marks the explorer stale; one
  background thread recomputes it with the newest values, so a burst of
  events never queues a backlog (changes made from code run synchronously);
- results and their figures are cached per setting (going back to a value
  costs nothing), and subclasses cache what a control does not touch
  (`GradientFlowExplorer` keeps the batch and the network);
- subclasses may implement `redraw` to move existing artists (set_data)
  instead of rebuilding the figure, and mark the moving artists animated
  so the static rest is rendered once and blitted; the layout is recomputed
  only when the y tick labels change width; the PNG is rendered by Agg at
  80 dpi and encoded with fast run-length compression.
"""

import base64
import html
import io
import math
import re
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from contextlib import contextmanager

import ipywidgets as w
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from PIL import Image
from torch.nn import functional as F

from .chains import orthogonal_chain_gradients
from .models import build_mlp
from .monitoring import GradientMonitor
from .plotting import OKABE_ITO, integer_ticks, plot_gradient_norms
from .seeding import flush_denormals, one_torch_thread


class _Refresher:
    """One background thread that refreshes stale explorers, each with its newest values.

    A dragged slider sends a burst of changes. Each one only marks its
    explorer stale here; the thread then recomputes each stale explorer once,
    with whatever its controls hold at that moment. A burst costs at most one
    computation in flight plus one with the latest values, never a backlog,
    and the kernel stays free to receive events while the thread works.
    """

    def __init__(self):
        self._stale: dict[int, "Explorer"] = {}
        self._running: "Explorer | None" = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, explorer: "Explorer") -> None:
        with self._condition:
            self._stale[id(explorer)] = explorer
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="explorer-refresh", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def wait(self, explorer: "Explorer", timeout: float | None = None) -> bool:
        """Block until `explorer` has no refresh pending or running; False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: id(explorer) not in self._stale and self._running is not explorer, timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._stale)
                self._running = self._stale.pop(next(iter(self._stale)))
            try:
                self._running._refresh_reporting_errors()
            finally:
                with self._condition:
                    self._running = None
                    self._condition.notify_all()


_refresher = _Refresher()


def format_ratio(x: float) -> str:
    """A gradient ratio the way people say it: 3e-9, 0.45, 2e+4 (two digits between 0.01 and 100)."""
    if not np.isfinite(x):
        return str(x)
    if x == 0 or 1e-2 <= abs(x) < 1e2:
        return f"{x:.2g}"
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.0e}")


def decade_limits(values, *, span: int = 3, current: tuple[float, float] | None = None) -> tuple[float, float]:
    """Log-axis limits on whole decades around the finite positive `values` (at least `span` decades).

    With `current` limits, keep them while they hold the data and waste at most 3 decades:
    a small step of a slider then leaves the axes (and an explorer's blitted background) as
    they were. New limits get one decade of room on each side for the next steps.

    >>> decade_limits(np.array([3e-9, 0.02]))
    (1e-09, 0.1)
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return current or (1e-3, 1e1)
    # a point within 5% of a decade line gets the next decade, so it does not sit on the frame
    low, high = np.floor(np.log10(values.min()) - 0.02), np.ceil(np.log10(values.max()) + 0.02)
    missing = max(0, span - (high - low))
    low, high = low - np.ceil(missing / 2), high + np.floor(missing / 2)
    if current is not None:
        now_low, now_high = np.log10(current)
        if now_low <= low and high <= now_high and (now_high - now_low) - (high - low) <= 3:
            return current
        low, high = low - 1, high + 1
    return float(10.0 ** max(low, -300)), float(10.0 ** min(high, 300))


class Explorer:
    """Base class: subclasses set ``controls`` and implement `compute`, `draw` and `describe`.

    `redraw` is optional: update the artists `draw` made (``line.set_data``)
    and return True, which skips rebuilding the figure. Artists marked
    ``set_animated(True)`` are blitted: the rest of the figure is rendered
    once per look (axis limits, positions, labels, legend texts) and reused,
    so `redraw` must change nothing else that is drawn. ``timings`` holds the
    seconds the last refresh spent in compute, draw and render (PNG);
    ``timeline`` the same for the last 200 refreshes, with their end time and
    the CPU time of the refreshing thread (wall time minus CPU time = waiting
    for a core on a busy machine).
    """

    title = ""
    dpi = 80                 # 11 pt text = 12.2 px; figure width in px = inches x 80 (at most 800)
    cache_size = 16          # results kept per explorer, keyed by control values (0: no cache)
    background = True        # front-end changes refresh on the background thread, coalesced

    def __init__(self, controls: dict[str, w.ValueWidget], *, figsize=(7.2, 3.4)):
        self.controls = controls
        self.figure = Figure(figsize=figsize, dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self._layout = ConstrainedLayoutEngine()
        width, height = self.canvas.get_width_height()
        self.image = w.Image(format="png", layout=w.Layout(width=f"{width}px", height=f"{height}px"))
        self.verdict = w.HTML()
        self.last: dict = {}
        self.png = b""
        self.timings: dict[str, float] = {}
        self.timeline: deque = deque(maxlen=200)  # (wall clock, timings) of recent refreshes
        self.refreshes = 0
        self._cache: OrderedDict = OrderedDict()
        self._pngs: dict = {}
        self._lock = threading.RLock()
        self._drawn = False
        self._holding = False
        self._generation = 0
        self._backgrounds: dict = {}
        self._layout_key: tuple | None = None
        self._positions: list = []
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self._header = [w.HTML(f"<b>{self.title}</b>")] if self.title else []
        self.panel = w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox(self._header + [self.panel, self.verdict, self.image])
        self.widget.add_class("course-explorer")
        self.panel.add_class("course-explorer-controls")
        self.verdict.add_class("course-explorer-verdict")
        self.image.add_class("course-explorer-figure")
        self.refresh()

    # subclasses implement these three (and optionally redraw)
    def compute(self, **values) -> dict:
        raise NotImplementedError

    def draw(self, figure: Figure, data: dict) -> None:
        raise NotImplementedError

    def describe(self, data: dict) -> str:
        raise NotImplementedError

    def redraw(self, figure: Figure, data: dict) -> bool:
        """Update the figure `draw` made in place; return False (the default) to redraw from scratch."""
        return False

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self, **values) -> dict:
        """Set control values (as a student would), recompute once, redraw; returns the new data."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}; this explorer has {sorted(self.controls)}")
        with self._lock:
            with self._held():
                for name, value in values.items():
                    self.controls[name].value = value
            return self.refresh()

    def refresh(self) -> dict:
        """Run the network for the current control values and redraw the figure in place."""
        with self._lock:
            start, start_cpu = time.perf_counter(), time.thread_time()
            values = self.values
            data = self._compute_cached(values)
            computed = time.perf_counter()
            key = self._key(values)
            png = self._pngs.get(key) if key is not None and self._cache.get(key) is data else None
            if png is None:  # a setting seen before shows its figure again without drawing it
                self._draw(data)
                drawn = time.perf_counter()
                png = self._render()
                if key is not None and key in self._cache:
                    self._pngs[key] = png
                    for stale in [k for k in self._pngs if k not in self._cache]:
                        del self._pngs[stale]
            else:
                drawn = computed
            self.png = png
            self.image.value = self.png
            self.verdict.value = self.describe(data)
            self.last = data
            self.refreshes += 1
            self.timings = {"compute": computed - start, "draw": drawn - computed,
                            "render": time.perf_counter() - drawn}
            self.timeline.append({"at": time.time(), "cpu": time.thread_time() - start_cpu, **self.timings})
            return data

    def wait(self, timeout: float | None = 30) -> bool:
        """Wait for refreshes started by the front end to finish; False if `timeout` passed first."""
        return _refresher.wait(self, timeout)

    def clear_cache(self) -> None:
        """Forget cached results and figures (call after changing settings that are not controls)."""
        self._cache.clear()
        self._pngs.clear()

    def close(self) -> None:
        """Close the widgets (frees their front-end models)."""
        for widget in (self.widget, *self._header, self.panel, self.verdict, self.image,
                       *self.controls.values()):
            widget.close()

    # -- plumbing --------------------------------------------------------------
    @staticmethod
    def _key(values: dict) -> tuple | None:
        try:
            key = tuple(sorted(values.items()))
            hash(key)
        except TypeError:
            return None
        return key

    def _compute_cached(self, values: dict) -> dict:
        key = self._key(values)
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        data = self.compute(**values)
        if key is not None and self.cache_size:
            self._cache[key] = data
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return data

    def _draw(self, data: dict) -> None:
        before = self._tick_label_lengths()
        if self._drawn and self.redraw(self.figure, data):
            if self._tick_label_lengths() != before:  # wider y tick labels need new margins
                self._run_layout()
            return
        self.figure.clear()
        self._backgrounds.clear()
        self._generation += 1
        self.draw(self.figure, data)
        self._drawn = True
        # Drawn from scratch: when the figure has the same parts and labels as last time, the
        # constrained layout (often half the cost of a redraw) would put the axes where they were.
        if self._layout_key is not None and self._layout_key == self._layout_signature():
            for ax, position in zip(self.figure.axes, self._positions):
                ax.set_position(position)
        else:
            self._run_layout()

    def _run_layout(self) -> None:
        self._layout_key = self._layout_signature()
        self._layout.execute(self.figure)
        self._positions = [ax.get_position() for ax in self.figure.axes]

    def _layout_signature(self) -> tuple:
        """What the constrained layout depends on: the axes grid, their labels and tick label sizes."""
        parts = [len(self.figure.axes), self.figure.get_suptitle(), len(self.figure.legends)]
        for ax, lengths in zip(self.figure.axes, self._tick_label_lengths(both=True)):
            spec = ax.get_subplotspec()
            legend = ax.get_legend()
            parts.append((spec.get_geometry() if spec else None, ax.get_xlabel(), ax.get_ylabel(),
                          ax.get_title("left"), ax.get_title(), ax.get_title("right"), lengths,
                          self._x_tick_ends(ax),
                          tuple(t.get_text() for t in legend.get_texts()) if legend else None))
        return tuple(parts)

    @staticmethod
    def _x_tick_ends(ax) -> tuple:
        """Where the outer x ticks sit (fraction of the axis): a label near an end can stick out of the axes,
        and the layout makes room for it (whole-number layer ticks keep their lengths as the depth changes)."""
        low, high = sorted(ax.get_xlim())
        ticks = [t for t in ax.xaxis.get_majorticklocs() if low <= t <= high]
        if not ticks or not ax.xaxis.get_visible():
            return ()
        return round((ticks[0] - low) / (high - low), 3), round((high - ticks[-1]) / (high - low), 3)

    def _tick_label_lengths(self, *, both: bool = False) -> list:
        """The longest y (and x) tick label of each axes, in characters (cheap: formats, does not draw)."""
        lengths = []
        for ax in self.figure.axes:
            sizes = []
            for axis, limits in ((ax.yaxis, ax.get_ylim()), (ax.xaxis, ax.get_xlim()))[:2 if both else 1]:
                if not axis.get_visible():
                    sizes.append(-1)
                    continue
                low, high = sorted(limits)
                ticks = [t for t in axis.get_majorticklocs() if low <= t <= high]
                labels = axis.get_major_formatter().format_ticks(ticks) if ticks else []
                sizes.append(max((len(label) for label in labels), default=0))
            lengths.append(tuple(sizes) if both else sizes[0])
        return lengths

    def _static_key(self) -> tuple:
        """What the non-animated part of the figure looks like: positions, limits, labels, legends."""
        parts = []
        for ax in self.figure.axes:
            legend = ax.get_legend()
            parts.append((tuple(ax.get_position().bounds), ax.get_xlim(), ax.get_ylim(), ax.get_xlabel(),
                           ax.get_ylabel(), ax.get_title(), ax.get_xscale(), ax.get_yscale(),
                           tuple(t.get_text() for t in legend.get_texts()) if legend else ()))
        return self._generation, tuple(parts)

    def _render(self) -> bytes:
        animated = [artist for ax in self.figure.axes for artist in ax.get_children() if artist.get_animated()]
        if animated:  # blit: the static part (axes, ticks, labels) is drawn once per look, then reused
            key = self._static_key()
            background = self._backgrounds.pop(key, None)
            if background is None:
                self.canvas.draw()  # draws everything but the animated artists
                background = self.canvas.copy_from_bbox(self.figure.bbox)
            else:
                self.canvas.restore_region(background)
            self._backgrounds[key] = background
            while len(self._backgrounds) > 8:
                self._backgrounds.pop(next(iter(self._backgrounds)))
            for artist in animated:
                artist.axes.draw_artist(artist)
        else:
            self.canvas.draw()
        size = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", size, self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        # zlib level 1 with run-length matching: a plot is mostly runs of one colour, so this is
        # 2-3x faster than the default and the PNG is about as small (~30 kB)
        image.save(buffer, format="png", compress_level=1, compress_type=3)
        return buffer.getvalue()

    @contextmanager
    def _held(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _on_change(self, change) -> None:
        if self._holding:
            return
        from_front_end = change["name"] in getattr(change["owner"], "_property_lock", {})
        if self.background and from_front_end:
            _refresher.submit(self)
        else:
            self.refresh()

    def _refresh_reporting_errors(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # shown to the student; the kernel keeps running
            traceback.print_exc(file=sys.__stderr__)
            self.verdict.value = (f'<span class="course-explorer-error" style="color:{OKABE_ITO[1]}">'
                                  f"could not update: {html.escape(type(error).__name__)}: "
                                  f"{html.escape(str(error))}</span>")

    def _repr_mimebundle_(self, **kwargs):
        """The widget view, with the figure as PNG for front ends without widgets."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = self._text()
        return bundle

    def _ipython_display_(self):
        """Two outputs: the live widget, then the saved copy JupyterLab shows when the widget cannot be drawn."""
        from IPython.display import display

        bundle = self.widget._repr_mimebundle_() or {}
        display({**bundle, "text/plain": self._text()}, raw=True)
        display({"text/html": self.static_html(), "text/plain": self._text()}, raw=True)

    def static_html(self) -> str:
        """Title, verdict and figure as they are now, as self-contained HTML (`_STATIC_CSS` explains)."""
        width, height = self.canvas.get_width_height()
        png = base64.b64encode(self.png).decode("ascii")
        title = f"<b>{html.escape(self.title)}</b><br>" if self.title else ""
        return (f'<div class="course-explorer-static"><style>{_STATIC_CSS}</style>{title}'
                f'<div>{self.verdict.value}</div>'
                f'<img src="data:image/png;base64,{png}" width="{width}" height="{height}" '
                f'alt="{html.escape(self.last.get("summary", ""))}">'
                f'<div style="color:#666">{STATIC_NOTE}</div></div>')

    def _text(self) -> str:
        return f"{type(self).__name__}({self.values}): {self.last.get('summary', '')}"


STATIC_NOTE = "A saved copy of this explorer: run the cell to move its sliders again."
# The saved copy follows the widget's output. While the live explorer is on the page, hide the copy;
# while it is not (model gone: "Error displaying widget", or still loading), hide the widget's output.
_STATIC_CSS = (".jp-OutputArea-child:has(.course-explorer) + .jp-OutputArea-child:has(.course-explorer-static)"
               "{display:none}"
               ".jp-OutputArea-child:has(:is([data-mime-type='application/vnd.jupyter.widget-view+json'],"
               ".jupyter-widgets)):not(:has(.course-explorer)):has(+ .jp-OutputArea-child .course-explorer-static)"
               "{display:none}")


class GradientFlowExplorer(Explorer):
    """Build a real MLP, run one forward and backward pass, show per-layer gradients and activations.

    On every change the network is `build_mlp(depth, width, activation=...,
    init=..., norm=..., residual=..., weight_scale=..., seed=...)` with a
    10-way linear head, run on a fixed batch (X ~ N(0, 1), random labels,
    cross-entropy) inside a `GradientMonitor`. Left: ||dL/dW|| and the
    backpropagated ||dL/dh|| per layer (log scale). Right: the std of each
    layer's activations (log scale) and the fraction of its units that are
    saturated (sigmoid, tanh) or dead (ReLU). The verdict is the monitor's
    `diagnose()`: layer 1 against the last layer, vanishing below 1e-2,
    exploding above 1e2 (on whichever of the two norms is more extreme);
    ``last["ratio"]`` is that ratio (the ||dL/dW|| ratio when healthy, and the
    smallest non-zero one when a norm underflowed to 0 in float32).

    `show` picks the controls (the others stay at the given settings), which
    is how notebooks build smaller explorers from this one. The batch and the
    initialized network are cached: a weight-scale change only rescales the
    stored initial weights, which equals rebuilding with that weight_scale.
    """

    title = "Gradient flow through a deep network"
    defaults = {"depth": 20, "width": 64, "weight_scale": 1.0, "seed": 0,  # sliders first, then choices
                "activation": "tanh", "init": "default", "norm": "none", "residual": False}
    activations = (("sigmoid", "sigmoid"), ("tanh", "tanh"), ("ReLU", "relu"), ("Leaky ReLU", "leaky_relu"),
                   ("GELU", "gelu"))
    inits = (("default", "default"), ("small normal", "small_normal"), ("Xavier", "xavier"), ("He", "he"),
             ("orthogonal", "orthogonal"))
    norms = (("none", "none"), ("BatchNorm", "batch"), ("LayerNorm", "layer"))
    # what the figure and the verdict read: one pass and no optimizer step, so no update:data
    metrics = ("grad_norm", "out_grad_norm", "act_mean", "act_std", "saturated", "dead")

    def __init__(self, *, show=None, batch_size: int = 256, num_classes: int = 10, **settings):
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; choose from {sorted(self.defaults)}")
        settings = {**self.defaults, **settings}
        show = tuple(self.defaults) if show is None else tuple(show)
        if set(show) - set(self.defaults):
            raise ValueError(f"unknown controls {sorted(set(show) - set(self.defaults))}; "
                             f"choose from {list(self.defaults)}")
        self.batch_size, self.num_classes = batch_size, num_classes
        self.fixed = {name: value for name, value in settings.items() if name not in show}
        self._batches: OrderedDict = OrderedDict()
        self._networks: OrderedDict = OrderedDict()
        super().__init__({name: self._make_control(name, settings[name]) for name in show}, figsize=(9.6, 3.4))

    @staticmethod
    def _make_control(name: str, value) -> w.ValueWidget:
        style = {"description_width": "initial"}
        if name == "depth":
            return w.IntSlider(value=value, min=1, max=50, description="depth", continuous_update=False)
        if name == "width":
            return w.IntSlider(value=value, min=8, max=256, step=8, description="width", continuous_update=False)
        if name == "weight_scale":
            return w.FloatSlider(value=value, min=0.1, max=3.0, step=0.05, description="weight scale",
                                 continuous_update=False, style=style)
        if name == "seed":
            return w.IntSlider(value=value, min=0, max=99, description="seed", continuous_update=False)
        if name == "residual":
            return w.Checkbox(value=value, description="residual", indent=False,
                              layout=w.Layout(width="auto"))
        options = {"activation": GradientFlowExplorer.activations, "init": GradientFlowExplorer.inits,
                   "norm": GradientFlowExplorer.norms}[name]
        description = "normalization" if name == "norm" else name
        return w.Dropdown(options=options, value=value, description=description, style=style,
                          layout=w.Layout(width="max-content"))

    # -- cached parts ----------------------------------------------------------
    def _batch(self, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (width, seed)
        if key not in self._batches:
            generator = torch.Generator().manual_seed(seed)
            X = torch.randn(self.batch_size, width, generator=generator)
            y = torch.randint(0, self.num_classes, (self.batch_size,), generator=generator)
            self._batches[key] = (X, y)
            while len(self._batches) > 4:
                self._batches.popitem(last=False)
        self._batches.move_to_end(key)
        return self._batches[key]

    def _network(self, s: dict) -> torch.nn.Module:
        key = (s["depth"], s["width"], s["activation"], s["init"], s["norm"], s["residual"], s["seed"])
        if key not in self._networks:
            net = build_mlp(s["depth"], s["width"], activation=s["activation"], init=s["init"],
                            norm=None if s["norm"] == "none" else s["norm"], residual=s["residual"],
                            out_features=self.num_classes, seed=s["seed"])
            weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Linear)]
            self._networks[key] = (net, weights, [p.detach().clone() for p in weights], [1.0])
            while len(self._networks) > 3:
                self._networks.popitem(last=False)
        self._networks.move_to_end(key)
        net, weights, initial, scale = self._networks[key]
        if scale[0] != s["weight_scale"]:
            with torch.no_grad():
                for weight, start in zip(weights, initial):
                    weight.copy_(start).mul_(s["weight_scale"])  # what build_mlp(weight_scale=...) does
            scale[0] = s["weight_scale"]
        return net

    # -- the explorer contract -------------------------------------------------
    def compute(self, **values) -> dict:
        s = {**self.fixed, **values}
        # denormals flushed as in set_seed and train: fast, and the same result in any thread
        with torch.random.fork_rng(devices=[]), one_torch_thread(), flush_denormals():
            X, y = self._batch(s["width"], s["seed"])
            net = self._network(s)
            net.zero_grad(set_to_none=True)
            with GradientMonitor(net, keep_values=False, metrics=self.metrics) as monitor:
                loss = F.cross_entropy(net(X), y)
                loss.backward()
            net.zero_grad(set_to_none=True)
        grads, flow = monitor.latest("grad_norm"), monitor.latest("out_grad_norm")
        findings = monitor.diagnose()
        # The monitor's verdict (it weighs ||dL/dW|| and ||dL/dh||); its ratio when it finds a problem.
        finding = next((f for kind in ("non-finite", "vanishing", "exploding") for f in findings if f.kind == kind),
                       None)
        kind = finding.kind if finding else "healthy"
        with np.errstate(all="ignore"):
            ratios = [float(v[0] / v[-1]) for v in (grads, flow) if np.isfinite(v[[0, -1]]).all() and v[-1] > 0]
        ratio = finding.value if finding and kind != "non-finite" else ratios[0] if ratios else float("nan")
        if ratio == 0 and any(r > 0 for r in ratios):
            ratio = min(r for r in ratios if r > 0)  # one norm underflowed to 0 in float32; quote the other
        if ratio == 0 and kind != "non-finite":
            summary = "layer 1 receives 0 of the last layer's gradient (it underflowed): vanishing"
            alive = np.flatnonzero(np.isfinite(grads) & (grads > 0))
            if len(alive) > 1:  # the first layer whose gradient norm did not underflow, for scale
                summary = (f"layer 1 receives 0 of the last layer's gradient (float32 underflow; layer "
                           f"{alive[0] + 1} receives {format_ratio(grads[alive[0]] / grads[-1])}): vanishing")
        elif kind == "non-finite" or not np.isfinite(ratio):
            summary = finding.message if finding else "the last layer receives no gradient at all: vanishing"
        elif kind == "exploding":
            summary = f"layer 1 receives {format_ratio(ratio)} times the last layer's gradient: exploding"
        else:
            summary = f"layer 1 receives {format_ratio(ratio)} of the last layer's gradient: {kind}"
        return {**s, "loss": loss.item(), "grad_norms": grads, "out_grad_norms": flow,
                "act_mean": monitor.latest("act_mean"), "act_std": monitor.latest("act_std"),
                "saturated": monitor.latest("saturated"), "dead": monitor.latest("dead"),
                "ratio": ratio, "kind": kind, "findings": findings, "summary": summary}

    @staticmethod
    def _positive(values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.where(np.isfinite(values) & (values > 0), values, np.nan)

    def _unhealthy(self, data: dict) -> np.ndarray:
        kind = "dead" if data["activation"] in ("relu", "leaky_relu") else "saturated"
        return np.nan_to_num(data[kind], nan=0.0)

    def draw(self, figure: Figure, data: dict) -> None:
        grads_ax, acts_ax = figure.subplots(1, 2)
        plot_gradient_norms({"||dL/dW||": self._positive(data["grad_norms"]),
                             "||dL/dh||": self._positive(data["out_grad_norms"])}, ax=grads_ax)
        grads_ax.lines[1].set_linestyle("--")
        grads_ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2,
                        borderaxespad=0.2)
        grads_ax.set_ylabel("gradient norm per layer")
        grads_ax.minorticks_off()
        layers = np.arange(1, data["depth"] + 1)
        acts_ax.plot(layers, self._positive(data["act_std"]), "o-", color=OKABE_ITO[2], markersize=3,
                     label="activation std")
        acts_ax.set_yscale("log")
        acts_ax.minorticks_off()
        acts_ax.set_xlabel("layer (1 = next to the input)")
        integer_ticks(acts_ax)
        acts_ax.set_ylabel("activation std", color=OKABE_ITO[2])
        acts_ax.grid(True, alpha=0.3)
        fraction_ax = acts_ax.twinx()
        fraction_ax.plot(layers, self._unhealthy(data), "s--", color=OKABE_ITO[1], markersize=2.5)
        fraction_ax.set_ylim(-0.03, 1.03)
        fraction_ax.set_ylabel("", color=OKABE_ITO[1])
        self._axes = (grads_ax, acts_ax, fraction_ax)
        self._ylims = [None, None]  # fresh axes: limits fitted to the data, then kept while they fit
        for ax in self._axes:
            for line in ax.lines:
                line.set_animated(True)  # only the data lines move; the rest is blitted
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        grads_ax, acts_ax, fraction_ax = self._axes
        layers = np.arange(1, data["depth"] + 1)
        grads, flow = self._positive(data["grad_norms"]), self._positive(data["out_grad_norms"])
        stds = self._positive(data["act_std"])
        grads_ax.lines[0].set_data(layers, grads)
        grads_ax.lines[1].set_data(layers, flow)
        acts_ax.lines[0].set_data(layers, stds)
        fraction_ax.lines[0].set_data(layers, self._unhealthy(data))
        fraction_ax.set_ylabel("dead fraction" if data["activation"] in ("relu", "leaky_relu")
                               else "saturated fraction")
        # x range snapped to a multiple of 5 layers: most depth steps then keep the axes (and their
        # blitted background) as they are
        right = 5 * math.ceil(data["depth"] / 5)
        for ax in (grads_ax, acts_ax):
            ax.set_xlim(0.5, right + 0.5)
        self._ylims = [decade_limits(np.concatenate([grads, flow]), current=self._ylims[0]),
                       decade_limits(stds, current=self._ylims[1])]
        grads_ax.set_ylim(*self._ylims[0])
        acts_ax.set_ylim(*self._ylims[1])
        return True

    def describe(self, data: dict) -> str:
        if data["kind"] == "non-finite" or not np.isfinite(data["ratio"]):
            text = html.escape(data["summary"], quote=False)
        elif data["ratio"] == 0:  # "(float32 underflow; layer 3 receives 4e-16)" from the summary
            detail = data["summary"].split("gradient (", 1)[1].rsplit("): ", 1)[0]
            text = f"layer 1 receives <b>0</b> of the last layer's gradient ({detail}): <b>vanishing</b>"
        else:
            share = "times" if data["kind"] == "exploding" else "of"
            text = (f"layer 1 receives <b>{format_ratio(data['ratio'])}</b> {share} the last layer's gradient: "
                    f"<b>{data['kind']}</b>")
        other = [f.message for f in data["findings"] if f.kind in ("dead", "saturated")]
        if other:
            text += f" &middot; {html.escape(other[0], quote=False)}"
        return text


def gradient_flow_explorer(**settings) -> GradientFlowExplorer:
    """The general explorer (see `GradientFlowExplorer`): every control, or `show=[...]` a few.

    >>> explorer = gradient_flow_explorer(depth=30, activation="sigmoid")
    >>> explorer.last["kind"]
    'vanishing'
    """
    return GradientFlowExplorer(**settings)


class ChainExplorer(Explorer):
    """Depth and per-layer factor -> gradient magnitude through a real chain of layers.

    The chain is h_k = W_k h_{k-1} with W_k = factor * Q_k (Q_k random
    orthogonal, width 16), so each layer multiplies the backpropagated
    gradient's norm by exactly `factor`: after `depth` layers, factor^depth.
    Autograd measures it; the plot overlays the formula. Notebook 01.
    """

    title = "Gradient through a chain of layers"

    def __init__(self, *, depth: int = 10, factor: float = 0.25, width: int = 16, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=1, max=50, description="depth", continuous_update=False),
            "factor": w.FloatSlider(value=factor, min=0.05, max=2.0, step=0.05, description="factor / layer",
                                    continuous_update=False, style={"description_width": "initial"}),
        }
        super().__init__(controls)

    def compute(self, *, depth: int, factor: float) -> dict:
        norms = orthogonal_chain_gradients(depth, factor, width=self.width, seed=self.seed)
        formula = factor ** (depth - np.arange(depth + 1))
        ratio = norms[0] / norms[-1]
        kind = "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "stable"
        return {"depth": depth, "factor": factor, "grad_norms": norms, "formula": formula, "ratio": ratio,
                "kind": kind, "summary": f"input gets {ratio:.1e} of the output gradient: {kind}"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        layers = np.arange(len(data["grad_norms"]))
        ax.plot(layers, data["grad_norms"], "o-", color=OKABE_ITO[0], markersize=3, label="measured (autograd)")
        ax.plot(layers, data["formula"], "--", color=OKABE_ITO[1], label=self._formula(data))
        ax.set_yscale("log")
        ax.set_xlabel("layer k (0 = input, L = depth = output)")
        integer_ticks(ax)
        ax.set_ylabel("gradient norm ||dL/dh||")
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2)
        ax.grid(True, alpha=0.3)
        for line in ax.lines:
            line.set_animated(True)  # only the two curves move; axes, ticks and labels are blitted
        self._ylim = None
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        ax = figure.axes[0]
        layers = np.arange(len(data["grad_norms"]))
        measured, formula = ax.lines[:2]
        measured.set_data(layers, data["grad_norms"])
        formula.set_data(layers, data["formula"])
        formula.set_label(self._formula(data))
        ax.get_legend().get_texts()[1].set_text(formula.get_label())
        ax.set_xlim(-0.5, 5 * math.ceil(data["depth"] / 5) + 0.5)
        self._ylim = decade_limits(np.concatenate([data["grad_norms"], data["formula"]]), current=self._ylim)
        ax.set_ylim(*self._ylim)
        return True

    @staticmethod
    def _formula(data: dict) -> str:
        """What the dashed line is: the factor once per layer between layer k and the output."""
        return f"formula {data['factor']:.2f}^(L - k), L = {data['depth']}"

    def describe(self, data: dict) -> str:
        return (f"The input receives <b>{data['ratio']:.1e}</b> of the output's gradient "
                f"({data['factor']:.2f}<sup>{data['depth']}</sup>): <b>{data['kind']}</b>")


def chain_explorer(**settings) -> ChainExplorer:
    """The notebook 01 explorer (see `ChainExplorer`); display it by ending a cell with it."""
    return ChainExplorer(**settings)


# -- notebook 04: ReLU and friends ----------------------------------------------------


import torch  # noqa: E402

from .activations import build_digits_net, gradient_norms, unit_activity  # noqa: E402
from .datasets import load_digits  # noqa: E402

ACTIVATION_CHOICES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu")


class ActivationExplorer(Explorer):
    """Activation, depth and initial bias -> per-layer gradient norms and dead units, measured.

    Builds a digits classifier (`course_lib.activations.build_digits_net`:
    width 64, the activation's usual init, every hidden bias set to `bias`),
    runs one cross-entropy backward pass on 512 digits, and plots ||dL/dW||
    per layer next to the fraction of dead units (derivative < 1e-6 on every
    example). Notebook 04.
    """

    title = "Gradient flow and dead units, by activation"

    def __init__(self, *, activation: str = "relu", depth: int = 10, bias: float = 0.0, width: int = 64,
                 num_examples: int = 512, seed: int = 0):
        self.width, self.seed = width, seed
        X, y = load_digits()
        index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:num_examples]
        self.X, self.y = X[index], y[index]
        controls = {
            "activation": w.Dropdown(options=list(ACTIVATION_CHOICES), value=activation, description="activation"),
            "depth": w.IntSlider(value=depth, min=2, max=30, description="depth", continuous_update=False),
            "bias": w.FloatSlider(value=bias, min=-2.0, max=1.0, step=0.1, description="initial bias",
                                  continuous_update=False, style={"description_width": "initial"}),
        }
        super().__init__(controls, figsize=(9.6, 3.4))

    @one_torch_thread()
    def compute(self, *, activation: str, depth: int, bias: float) -> dict:
        net = build_digits_net(activation, depth=depth, width=self.width, bias=bias, seed=self.seed)
        grads = gradient_norms(net, self.X, self.y)
        dead = unit_activity(net, self.X)["dead"]
        ratio = grads[0] / grads[-1] if grads[-1] > 0 else math.nan
        if not math.isfinite(ratio):
            kind = "no gradient reaches the last layer"
        else:
            kind = "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "healthy"
        return {"activation": activation, "depth": depth, "bias": bias, "grad_norms": grads, "dead": dead,
                "ratio": ratio, "kind": kind, "dead_mean": float(dead.mean()),
                "summary": f"{activation}, depth {depth}: layer 1 gets {ratio:.1e} of the last layer's "
                           f"gradient ({kind}); {dead.mean():.0%} of units dead"}

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2, width_ratios=[3, 2])
        layers = np.arange(1, data["depth"] + 1)
        grads = data["grad_norms"]
        shown = grads > 0
        left.semilogy(layers[shown], grads[shown], "o-", color=OKABE_ITO[0], markersize=3)
        if not shown.all():
            left.plot(layers[~shown], np.full((~shown).sum(), grads[shown].min() if shown.any() else 1e-30),
                      "x", color=OKABE_ITO[1], label="exactly 0")
            left.legend(frameon=False)
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dW||")
        left.grid(True, alpha=0.3)
        right.bar(layers, data["dead"], color=OKABE_ITO[1])
        right.set_ylim(0, 1)
        right.set_xlabel("layer")
        right.set_ylabel("dead fraction")
        for ax in (left, right):
            integer_ticks(ax)

    def describe(self, data: dict) -> str:
        ratio = "no gradient" if not math.isfinite(data["ratio"]) else f"<b>{data['ratio']:.1e}</b>"
        return (f"{data['activation']}, {data['depth']} layers, bias {data['bias']:+.1f}: layer 1 receives "
                f"{ratio} of the last layer's gradient (<b>{data['kind']}</b>); "
                f"<b>{data['dead_mean']:.0%}</b> of hidden units are dead")


def activation_explorer(**settings) -> ActivationExplorer:
    """The notebook 04 explorer (see `ActivationExplorer`); display it by ending a cell with it."""
    return ActivationExplorer(**settings)


# -- notebook 05: initialization -------------------------------------------------------

from .variance import (chi_1, critical_sigma_w2, gradient_curve, layer_statistics,  # noqa: E402
                       random_network, variance_curve)


class VarianceExplorer(Explorer):
    """sigma_w^2 and depth -> pre-activation std and gradient std per layer, measured and predicted.

    A random net (width 128, W ~ N(0, sigma_w^2 / fan_in), b ~ N(0, sigma_b^2))
    gets 256 Gaussian inputs; one forward and backward pass measures the std
    of z_l and of dL/dh_l per layer, next to the mean-field prediction
    (`course_lib.variance.variance_curve` / `gradient_curve`). The third panel
    shows chi_1 against sigma_w^2 with the critical value (chi_1 = 1, the edge
    of chaos, Schoenholz et al. 2017) marked. Notebook 05.
    """

    title = "Variance propagation at initialization"

    def __init__(self, *, activation: str = "tanh", sigma_w2: float = 1.0, depth: int = 30,
                 sigma_b2: float = 0.05, width: int = 128, num_examples: int = 256, seed: int = 0):
        self.sigma_b2, self.width, self.seed = sigma_b2, width, seed
        self.X = torch.randn(num_examples, width, generator=torch.Generator().manual_seed(seed + 1))
        self._chi_curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        controls = {
            "activation": w.Dropdown(options=["tanh", "relu"], value=activation, description="activation"),
            "sigma_w2": w.FloatSlider(value=sigma_w2, min=0.25, max=4.0, step=0.05, description="sigma_w^2",
                                      continuous_update=False, readout_format=".2f"),
            "depth": w.IntSlider(value=depth, min=2, max=60, description="depth", continuous_update=False),
        }
        super().__init__(controls, figsize=(10.0, 3.4))

    @one_torch_thread()
    def chi_curve(self, activation: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(sigma_w^2 grid, chi_1 on it, critical sigma_w^2) for `activation`, computed once."""
        if activation not in self._chi_curves:
            grid = np.linspace(0.25, 4.0, 46)
            chis = np.array([chi_1(activation, sigma_w2=s, sigma_b2=self.sigma_b2) for s in grid])
            self._chi_curves[activation] = (grid, chis, critical_sigma_w2(activation, sigma_b2=self.sigma_b2))
        return self._chi_curves[activation]

    @one_torch_thread()
    def compute(self, *, activation: str, sigma_w2: float, depth: int) -> dict:
        net = random_network(activation, depth=depth, width=self.width, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2,
                             seed=self.seed)
        stats = layer_statistics(net, self.X, seed=self.seed)
        predicted_q = variance_curve(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2, depth=depth)
        predicted_g = gradient_curve(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2, depth=depth)
        grid, chis, critical = self.chi_curve(activation)
        chi = chi_1(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2)
        phase = "ordered" if chi < 0.98 else "chaotic" if chi > 1.02 else "critical (edge of chaos)"
        ratio = stats["grad_std"][0] / stats["grad_std"][-1]
        return {"activation": activation, "sigma_w2": sigma_w2, "depth": depth, "pre_std": stats["pre_std"],
                "grad_std": stats["grad_std"], "predicted_pre_std": np.sqrt(predicted_q),
                "predicted_grad_std": np.sqrt(predicted_g), "chi_1": chi, "critical": critical, "phase": phase,
                "grid": grid, "chis": chis, "ratio": ratio, "predicted_ratio": math.sqrt(predicted_g[0]),
                "summary": f"{activation}, sigma_w^2 = {sigma_w2:.2f}: chi_1 = {chi:.2f} ({phase}); layer 1 "
                           f"gets {ratio:.1e} of the last layer's gradient std"}

    def draw(self, figure: Figure, data: dict) -> None:
        forward, backward, phase = figure.subplots(1, 3)
        layers = np.arange(1, data["depth"] + 1)
        for ax, measured, predicted, label in ((forward, data["pre_std"], data["predicted_pre_std"], "std of z_l"),
                                               (backward, data["grad_std"], data["predicted_grad_std"],
                                                "std of dL/dh_l")):
            ax.semilogy(layers, measured, "o", color=OKABE_ITO[0], markersize=3, label="measured")
            ax.semilogy(layers, predicted, "-", color=OKABE_ITO[1], label="mean field")
            ax.set_xlabel("layer")
            integer_ticks(ax)
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        forward.legend(frameon=False)
        phase.plot(data["grid"], data["chis"], color=OKABE_ITO[2])
        phase.axhline(1.0, color="black", linewidth=0.8)
        phase.axvline(data["critical"], color=OKABE_ITO[3], linestyle="--",
                      label=f"critical {data['critical']:.2f}")
        phase.plot([data["sigma_w2"]], [data["chi_1"]], "o", color=OKABE_ITO[1], label="this net")
        phase.set_xlabel("sigma_w^2")
        phase.set_ylabel("chi_1 (gradient factor per layer)")
        phase.legend(frameon=False)
        phase.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        return (f"chi_1 = <b>{data['chi_1']:.2f}</b>: <b>{data['phase']}</b> (critical sigma_w^2 = "
                f"{data['critical']:.2f}). Layer 1 gets <b>{data['ratio']:.1e}</b> of the last layer's gradient "
                f"std; mean field predicts {data['predicted_ratio']:.1e}.")


def variance_explorer(**settings) -> VarianceExplorer:
    """The notebook 05 explorer (see `VarianceExplorer`); display it by ending a cell with it."""
    return VarianceExplorer(**settings)


# -- notebook 02: sigmoid saturation ---------------------------------------------------


from .saturation import layer_gradients  # noqa: E402


class SaturationExplorer(Explorer):
    """Depth, weight scale and activation -> per-layer gradient bars of a real network, measured.

    A fresh digits classifier (`course_lib.saturation.layer_gradients`: width
    64, W ~ N(0, scale^2 / fan_in), sigmoid or tanh) runs one cross-entropy
    backward pass on 256 digits. Left: ||dL/dW|| per layer (log scale). Right:
    the fraction of each layer's units in the flat zone (sigmoid < 0.03 or
    > 0.97, |tanh| > 0.97). Notebook 02.
    """

    title = "Saturation and gradient flow in a sigmoid / tanh network"

    def __init__(self, *, depth: int = 10, weight_scale: float = 1.0, activation: str = "sigmoid",
                 seed: int = 0):
        self.seed = seed
        controls = {
            "depth": w.IntSlider(value=depth, min=2, max=20, description="depth", continuous_update=False),
            "weight_scale": w.FloatSlider(value=weight_scale, min=0.25, max=8.0, step=0.25,
                                          description="weight scale", continuous_update=False,
                                          style={"description_width": "initial"}),
            "activation": w.Dropdown(options=["sigmoid", "tanh"], value=activation, description="activation"),
        }
        super().__init__(controls, figsize=(9.6, 3.4))

    def compute(self, *, depth: int, weight_scale: float, activation: str) -> dict:
        with one_torch_thread():
            result = layer_gradients(depth, activation=activation, weight_scale=weight_scale, seed=self.seed)
        grads, saturated = result["grad_norm"], result["saturated"]
        ratio = float(grads[0] / grads[-1]) if grads[-1] > 0 else math.nan
        if not math.isfinite(ratio):
            kind = "vanishing"
        else:
            kind = "vanishing" if ratio < VANISHING_RATIO else "exploding" if ratio > EXPLODING_RATIO else "healthy"
        return {"depth": depth, "weight_scale": weight_scale, "activation": activation, "grad_norms": grads,
                "saturated": saturated, "ratio": ratio, "kind": kind, "saturated_mean": float(saturated.mean()),
                "summary": f"{activation}, depth {depth}, scale {weight_scale:g}: layer 1 gets {ratio:.1e} of "
                           f"the last layer's gradient ({kind}); {saturated.mean():.0%} of units saturated"}

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2, width_ratios=[3, 2])
        layers = np.arange(1, data["depth"] + 1)
        grads = np.where(data["grad_norms"] > 0, data["grad_norms"], np.nan)
        left.bar(layers, grads, color=OKABE_ITO[0])
        left.set_yscale("log")
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dW||")
        left.grid(True, axis="y", alpha=0.3)
        right.bar(layers, data["saturated"], color=OKABE_ITO[1])
        right.set_ylim(0, 1)
        right.set_xlabel("layer")
        right.set_ylabel("saturated fraction")
        for ax in (left, right):
            integer_ticks(ax)

    def describe(self, data: dict) -> str:
        ratio = "no gradient" if not math.isfinite(data["ratio"]) else f"<b>{format_ratio(data['ratio'])}</b>"
        return (f"{data['activation']}, {data['depth']} layers, weight scale {data['weight_scale']:g}: layer 1 "
                f"receives {ratio} of the last layer's gradient (<b>{data['kind']}</b>); "
                f"<b>{data['saturated_mean']:.0%}</b> of units saturated")


def saturation_explorer(**settings) -> SaturationExplorer:
    """The notebook 02 explorer (see `SaturationExplorer`); display it by ending a cell with it."""
    return SaturationExplorer(**settings)


# -- notebook 03: RNN long-range dependencies ------------------------------------------

from .recurrent import orthogonal_rnn_gradients  # noqa: E402


class RecurrentExplorer(Explorer):
    """Spectral radius and sequence length -> the gradient through time of a real RNN, measured.

    The RNN is h_t = f(radius * Q h_{t-1} + x_t) with Q random orthogonal
    (width 32), so every singular value of W_hh equals `radius`; autograd
    measures ||dh_T/dh_t^T u|| for a unit vector u
    (`course_lib.recurrent.orthogonal_rnn_gradients`). For a linear RNN it is
    exactly radius^(T - t), the dashed line; tanh's slopes (<= 1) pull it lower.
    Notebook 03.
    """

    title = "Gradient through time in a recurrent network"

    def __init__(self, *, radius: float = 0.9, length: int = 50, nonlinearity: str = "linear", seed: int = 0):
        self.seed = seed
        controls = {
            "radius": w.FloatSlider(value=radius, min=0.5, max=1.5, step=0.05, description="spectral radius",
                                    continuous_update=False, style={"description_width": "initial"}),
            "length": w.IntSlider(value=length, min=5, max=200, step=5, description="length T",
                                  continuous_update=False),
            "nonlinearity": w.Dropdown(options=["linear", "tanh"], value=nonlinearity, description="RNN"),
        }
        super().__init__(controls)

    def compute(self, *, radius: float, length: int, nonlinearity: str) -> dict:
        with one_torch_thread():
            norms = orthogonal_rnn_gradients(radius, length, nonlinearity=nonlinearity, seed=self.seed)
        formula = radius ** (length - np.arange(length + 1))
        ratio = float(norms[0] / norms[-1])
        kind = "vanishing" if ratio < VANISHING_RATIO else "exploding" if ratio > EXPLODING_RATIO else "stable"
        return {"radius": radius, "length": length, "nonlinearity": nonlinearity, "grad_norms": norms,
                "formula": formula, "ratio": ratio, "kind": kind,
                "summary": f"step 0 gets {ratio:.1e} of the gradient at step {length}: {kind}"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        steps = np.arange(data["length"] + 1)
        ax.semilogy(steps, data["grad_norms"], "o-", color=OKABE_ITO[0], markersize=2.5,
                    label=f"measured ({data['nonlinearity']} RNN)")
        ax.semilogy(steps, data["formula"], "--", color=OKABE_ITO[1],
                    label=f"radius^(T - t) = {data['radius']:.2f}^(T - t)")
        ax.set_xlabel("time step t (T = last)")
        integer_ticks(ax)
        ax.set_ylabel("||dL/dh_t||  (||dL/dh_T|| = 1)")
        # whole decades, at least three: at radius 1 the linear RNN's gradient stays at 1 and its
        # rounding noise (1e-7) must not fill the axis as if it were a zigzag
        ax.set_ylim(*decade_limits(np.concatenate([data["grad_norms"], data["formula"]])))
        ax.legend(frameon=False, loc="best")
        ax.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        power = (f"{data['radius']:.2f}<sup>{data['length']}</sup> = "
                 f"{format_ratio(data['radius'] ** data['length'])}")
        if abs(data["ratio"] - 1) < 1e-3:  # radius 1, linear: float32 rounding is all that moves
            return (f"The gradient <b>stays at 1</b> all the way back to h<sub>0</sub> (radius 1: {power}): "
                    f"<b>{data['kind']}</b>")
        return (f"h<sub>0</sub> receives <b>{format_ratio(data['ratio'])}</b> of the gradient at step "
                f"{data['length']} (a linear RNN: {power}): <b>{data['kind']}</b>")


def recurrent_explorer(**settings) -> RecurrentExplorer:
    """The notebook 03 explorer (see `RecurrentExplorer`); display it by ending a cell with it."""
    return RecurrentExplorer(**settings)


# -- notebook 06: normalization --------------------------------------------------------

from .normalization import layer_statistics_at_init  # noqa: E402
from .monitoring import EXPLODING_RATIO, VANISHING_RATIO  # noqa: E402


class NormalizationExplorer(Explorer):
    """Weight scale, depth and activation -> per-layer gradients with and without BatchNorm, measured.

    Two digits classifiers with the same weights' distribution, W ~ N(0, scale^2),
    width 64, one without normalization and one with BatchNorm after every
    linear layer (`course_lib.normalization.layer_statistics_at_init`), each
    run one cross-entropy backward pass on 256 digits. Left: the gradient at each
    layer's output, ||dL/dh||; right: the std of each layer's activations. Notebook 06.
    """

    title = "Weight scale with and without BatchNorm"

    def __init__(self, *, weight_scale: float = 0.1, depth: int = 10, activation: str = "sigmoid",
                 width: int = 64, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "weight_scale": w.FloatLogSlider(value=weight_scale, base=10, min=-3, max=1, step=0.25,
                                             description="weight std", continuous_update=False,
                                             readout_format=".3g", style={"description_width": "initial"}),
            "depth": w.IntSlider(value=depth, min=2, max=30, description="depth", continuous_update=False),
            "activation": w.Dropdown(options=["sigmoid", "tanh", "relu"], value=activation,
                                     description="activation"),
        }
        super().__init__(controls, figsize=(9.6, 3.4))

    def compute(self, *, weight_scale: float, depth: int, activation: str) -> dict:
        data = {"weight_scale": weight_scale, "depth": depth, "activation": activation}
        for key, norm in (("plain", None), ("batch", "batch")):
            stats = layer_statistics_at_init(depth, self.width, activation=activation, norm=norm,
                                             std=weight_scale, seed=self.seed)
            grads = stats["out_grad_norm"]
            ratio = float(grads[0] / grads[-1]) if grads[-1] > 0 else math.nan
            if not math.isfinite(ratio):
                kind = "vanishing" if grads[-1] == 0 else "non-finite"
            else:
                kind = "vanishing" if ratio < VANISHING_RATIO else "exploding" if ratio > EXPLODING_RATIO \
                    else "healthy"
            data.update({f"grad_norms_{key}": grads, f"act_std_{key}": stats["act_std"],
                         f"ratio_{key}": ratio, f"kind_{key}": kind})
        data["summary"] = (f"{activation}, depth {depth}, weight std {weight_scale:.3g}: layer 1 gets "
                           f"{format_ratio(data['ratio_plain'])} of the last layer's gradient without "
                           f"BatchNorm ({data['kind_plain']}), {format_ratio(data['ratio_batch'])} with it "
                           f"({data['kind_batch']})")
        return data

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2)
        layers = np.arange(1, data["depth"] + 1)
        for i, (key, label) in enumerate((("plain", "no normalization"), ("batch", "BatchNorm"))):
            grads = data[f"grad_norms_{key}"]
            left.semilogy(layers, np.where(grads > 0, grads, np.nan), "o-", color=OKABE_ITO[i], markersize=3,
                          label=label)
            right.semilogy(layers, np.maximum(data[f"act_std_{key}"], 1e-30), "o-", color=OKABE_ITO[i],
                           markersize=3, label=label)
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dh||")
        left.legend(frameon=False)
        left.grid(True, alpha=0.3)
        right.set_xlabel("layer")
        for ax in (left, right):
            integer_ticks(ax)
        right.set_ylabel("std of the layer's activations")
        right.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        return (f"Layer 1 receives <b>{format_ratio(data['ratio_plain'])}</b> of the last layer's gradient "
                f"without BatchNorm (<b>{data['kind_plain']}</b>) and <b>{format_ratio(data['ratio_batch'])}"
                f"</b> with it (<b>{data['kind_batch']}</b>).")


def normalization_explorer(**settings) -> NormalizationExplorer:
    """The notebook 06 explorer (see `NormalizationExplorer`); display it by ending a cell with it."""
    return NormalizationExplorer(**settings)


# -- notebook 07: ResNets --------------------------------------------------------------

from .residual import resnet_gradient_norms  # noqa: E402
from .monitoring import EXPLODING_RATIO, VANISHING_RATIO  # noqa: E402,F811


class ResidualExplorer(Explorer):
    """Depth and plain/residual -> the gradient arriving at each block of a BN-ReLU net, measured.

    `course_lib.residual.build_resnet` (width 32, He init, depth = 1 + 2 x blocks
    + 1) runs one cross-entropy backward pass on 256 digits at initialization;
    the plot shows ||dL/dh_k|| at the output of every block for the chosen
    architecture, and the other one faintly for comparison. Notebook 07.
    """

    title = "Plain vs residual: gradient at each block"

    def __init__(self, *, depth: int = 56, architecture: str = "plain", width: int = 32, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=8, max=110, step=6, description="depth",
                                 continuous_update=False),
            "architecture": w.ToggleButtons(options=["plain", "residual"], value=architecture,
                                            description="network"),
        }
        super().__init__(controls)

    def compute(self, *, depth: int, architecture: str) -> dict:
        norms = {kind: resnet_gradient_norms(depth, residual=kind == "residual", width=self.width, seed=self.seed)
                 for kind in ("plain", "residual")}
        grads = norms[architecture]
        ratio = float(grads[0] / grads[-1]) if grads[-1] > 0 else math.nan
        if not math.isfinite(ratio):
            kind = "vanishing" if grads[-1] == 0 else "non-finite"
        else:
            kind = "vanishing" if ratio < VANISHING_RATIO else "exploding" if ratio > EXPLODING_RATIO else "healthy"
        return {"depth": depth, "architecture": architecture, "grad_norms": grads, "norms": norms,
                "ratio": ratio, "kind": kind,
                "summary": f"{architecture}-{depth}: block 1 gets {format_ratio(ratio)} of the last block's "
                           f"gradient ({kind})"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        for i, kind in enumerate(("plain", "residual")):
            norms = data["norms"][kind]
            chosen = kind == data["architecture"]
            ax.semilogy(np.arange(1, len(norms) + 1), norms, "o-" if chosen else "-", markersize=3,
                        color=OKABE_ITO[i], alpha=1.0 if chosen else 0.35, linewidth=1.5 if chosen else 1,
                        label=f"{kind}-{data['depth']}")
        ax.set_xlabel("block (1 = next to the input)")
        integer_ticks(ax)
        ax.set_ylabel("gradient norm ||dL/dh_k||")
        ax.legend(frameon=False)
        ax.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        return (f"{data['architecture']}-{data['depth']}: block 1 receives <b>{format_ratio(data['ratio'])}</b> "
                f"of the last block's gradient (<b>{data['kind']}</b>)")


def residual_explorer(**settings) -> ResidualExplorer:
    """The notebook 07 explorer (see `ResidualExplorer`); display it by ending a cell with it."""
    return ResidualExplorer(**settings)
