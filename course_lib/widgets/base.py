"""The `Explorer` base class: controls, compute, draw in place, render to PNG, and a saved copy.

The package docstring (`course_lib.widgets`) describes the contract and why it feels instant.
"""

import base64
import html
import io
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from contextlib import contextmanager

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from PIL import Image

from ..plotting import OKABE_ITO


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
