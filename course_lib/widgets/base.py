"""The `Explorer` base class: controls, compute, draw in place, show (moving curves drawn by the browser), a saved copy.

The package docstring (`course_lib.widgets`) describes the contract and why it feels instant.
"""

import base64
import html
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

from ..plotting import OKABE_ITO
from .frames import FigureFrames
from .refresher import _refresher


class Explorer(FigureFrames):
    """Base class: subclasses set ``controls`` and implement `compute`, `draw` and `describe`.

    `redraw` is optional: update the artists `draw` made (``line.set_data``)
    and return True, which skips rebuilding the figure. So is `work_ahead`:
    work a likely next change needs, done piece by piece while the page shows
    the figure. Lines marked ``set_animated(True)`` are drawn by the browser:
    the rest of the figure (axes, ticks, labels, legend) goes to the page as a
    PNG only when it changes, and each change sends just those lines, as SVG paths in the
    PNG's pixels (`_svg`); so `redraw` must change nothing else that is drawn,
    or the static part is rendered again. Without animated lines (or with
    ``browser_draws = False``) every change sends the whole figure as a PNG.
    ``png`` is the whole figure as a PNG either way (the saved copy, front
    ends without widgets). ``timings`` holds the seconds the last refresh
    spent in compute, draw and render (SVG, and a PNG when one is sent);
    ``timeline`` the same for the last 200 refreshes, with their end time and
    the CPU time of the refreshing thread (wall time minus CPU time = waiting
    for a core on a busy machine).
    """

    title = ""
    dpi = 80                 # 11 pt text = 12.2 px; figure width in px = inches x 80 (at most 800)
    cache_size = 16          # results kept per explorer, keyed by control values (0: no cache)
    background = True        # front-end changes refresh on the background thread, coalesced
    browser_draws = True     # animated lines drawn by the browser over a PNG of the rest (False: a PNG per change)

    def __init__(self, controls: dict[str, w.ValueWidget], *, figsize=(7.2, 3.4)):
        self.controls = controls
        self.figure = Figure(figsize=figsize, dpi=self.dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self._layout = ConstrainedLayoutEngine()
        width, height = self.canvas.get_width_height()
        # the PNG and the curves drawn over it share one grid cell of the figure's size
        size = {"width": f"{width}px", "height": f"{height}px", "margin": "0", "grid_area": "1 / 1"}
        self.image = w.Image(format="png", layout=w.Layout(**size))
        self.curves = w.HTML(layout=w.Layout(**size))
        self.plot = w.GridBox([self.image, self.curves], layout=w.Layout(
            grid_template_columns=f"{width}px", grid_template_rows=f"{height}px", margin="2px 0"))
        self.verdict = w.HTML()
        self.last: dict = {}
        self.timings: dict[str, float] = {}
        self.timeline: deque = deque(maxlen=200)  # (wall clock, timings) of recent refreshes
        self.refreshes = 0
        self._cache: OrderedDict = OrderedDict()
        self._frames: dict = {}         # control values -> (PNG, SVG) shown for them
        self._lock = threading.RLock()
        self._drawn = False
        self._holding = False
        self._generation = 0
        self._backgrounds: dict = {}    # what the static part looks like -> its Agg pixels (for `png`)
        self._static_pngs: dict = {}    # ... -> its PNG (sent to the page under the browser's curves)
        self._figure_data = None        # the data the figure shows now (a cached frame is shown without drawing)
        self._png: tuple = (None, b"")  # (data, PNG of the whole figure), made when asked for
        self._svgs = 0                  # SVGs made: numbers each (data-frame), so the page can tell them apart
        self._layout_key: tuple | None = None
        self._positions: list = []
        self._laid_out_lengths: list = []  # the tick label lengths the layout made room for
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self._header = [w.HTML(f"<b>{self.title}</b>")] if self.title else []
        self.panel = w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox(self._header + [self.panel, self.verdict, self.plot])
        self.widget.add_class("course-explorer")
        self.panel.add_class("course-explorer-controls")
        self.verdict.add_class("course-explorer-verdict")
        self.image.add_class("course-explorer-figure")
        self.curves.add_class("course-explorer-curves")
        self.refresh()

    # subclasses implement these three (and optionally redraw)
    def compute(self, **values) -> dict:
        raise NotImplementedError

    def draw(self, figure: Figure, data: dict) -> None:
        raise NotImplementedError

    def work_ahead(self) -> bool:
        """One short piece of work a likely next change will need, done while the student looks at
        the figure (the refresh thread calls it after a front-end change, piece by piece, until it
        returns False or a control changes). Default: nothing."""
        return False

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
            frame = self._frames.get(key) if key is not None and self._cache.get(key) is data else None
            if frame is None:  # a setting seen before shows its figure again without drawing it
                self._draw(data)
                self._figure_data = data
                drawn = time.perf_counter()
                frame = self._frame()
                if key is not None and key in self._cache:
                    self._frames[key] = frame
                    for stale in [k for k in self._frames if k not in self._cache]:
                        del self._frames[stale]
            else:
                drawn = computed
            png, svg = frame
            if self.image.value != png:  # the static part is sent only when it changed
                self.image.value = png
            self.curves.value = svg
            self.verdict.value = self.describe(data)
            self.last = data
            self.refreshes += 1
            self.timings = {"compute": computed - start, "draw": drawn - computed,
                            "render": time.perf_counter() - drawn}
            self.timeline.append({"at": time.time(), "cpu": time.thread_time() - start_cpu, **self.timings})
            return data

    @property
    def png(self) -> bytes:
        """The whole figure as it is now, as a PNG (the saved copy; rendered when first asked for)."""
        with self._lock:
            if self._png[0] is not self.last:
                if self._figure_data is not self.last:  # a cached frame was shown without drawing
                    self._draw(self.last)
                    self._figure_data = self.last
                self._png = (self.last, self._render())
            return self._png[1]

    def wait(self, timeout: float | None = 30) -> bool:
        """Wait for refreshes started by the front end to finish; False if `timeout` passed first."""
        return _refresher.wait(self, timeout)

    def clear_cache(self) -> None:
        """Forget cached results and figures (call after changing settings that are not controls)."""
        self._cache.clear()
        self._frames.clear()

    def close(self) -> None:
        """Close the widgets (frees their front-end models)."""
        for widget in (self.widget, *self._header, self.panel, self.verdict, self.plot, self.image, self.curves,
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
