"""The `Explorer` base class: controls, compute, draw in place, show (moving curves drawn by the browser), a saved copy.

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
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.path import Path
from PIL import Image

from ..plotting import OKABE_ITO, integer_ticks


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

    pause = 0.25  # seconds with nothing stale (the page paints the new figure) before working ahead

    def _run(self) -> None:
        ahead: "Explorer | None" = None  # the explorer refreshed last, which may work ahead while idle
        while True:
            with self._condition:
                stale = self._condition.wait_for(lambda: bool(self._stale), None if ahead is None else self.pause)
                if stale:
                    self._running = self._stale.pop(next(iter(self._stale)))
            if not stale:
                self._work_ahead(ahead)
                ahead = None
                continue
            try:
                self._running._refresh_reporting_errors()
            finally:
                ahead = self._running
                with self._condition:
                    self._running = None
                    self._condition.notify_all()

    def _work_ahead(self, explorer: "Explorer") -> None:
        """`explorer.work_ahead()` piece by piece until it is done or an explorer turns stale."""
        try:
            while explorer.work_ahead():
                with self._condition:
                    if self._stale:
                        return
        except Exception:  # work ahead is optional: the next change computes what it needs
            traceback.print_exc(file=sys.__stderr__)


_refresher = _Refresher()


class Explorer:
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

    def _animated(self) -> list:
        return [artist for ax in self.figure.axes for artist in ax.get_children() if artist.get_animated()]

    def _render(self) -> bytes:
        """The whole figure as a PNG: the static part is drawn once per look, then the animated lines blitted."""
        animated = self._animated()
        if animated:
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
        return self._encode()

    def _encode(self) -> bytes:
        size = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", size, self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        # zlib level 1 with run-length matching: a plot is mostly runs of one colour, so this is
        # 2-3x faster than the default and the PNG is about as small (~30 kB)
        image.save(buffer, format="png", compress_level=1, compress_type=3)
        return buffer.getvalue()

    def _frame(self) -> tuple[bytes, str]:
        """What the page shows: (PNG, SVG). The PNG is the static part, rendered once per look and reused,
        and the SVG the animated lines over it; or the whole figure and no SVG (`browser_draws`)."""
        animated = self._animated()
        if not self.browser_draws or not animated or not all(_svg_can_draw(a) for a in animated):
            return self._render(), ""
        key = self._static_key()
        png = self._static_pngs.pop(key, None)
        if png is None:
            self.canvas.draw()  # draws everything but the animated artists
            png = self._encode()
        self._static_pngs[key] = png
        while len(self._static_pngs) > 8:
            self._static_pngs.pop(next(iter(self._static_pngs)))
        return png, self._svg(animated)

    def _svg(self, lines: list) -> str:
        """The lines as SVG paths in the figure's pixels, each axes' lines clipped to its box, as Agg clips them.

        Pixel for pixel where the lines would be in the PNG: the transform is matplotlib's (log axes
        included); widths, dashes and marker sizes are in points, scaled by dpi / 72.
        """
        width, height = self.canvas.get_width_height()
        scale = self.dpi / 72
        self._svgs += 1
        parts = [f'<svg data-frame="{self._svgs}" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" style="display:block;pointer-events:none">']
        groups: dict = {}
        for line in lines:
            if line.get_visible():
                box = line.get_clip_box() if line.get_clip_on() else None
                groups.setdefault(tuple(np.round(box.bounds, 1)) if box is not None else None, []).append(line)
        for box, members in groups.items():
            if box is not None:  # a nested svg clips to its viewport; its viewBox keeps the figure's pixels
                x, y, w_, h = box
                parts.append(f'<svg x="{x}" y="{height - y - h:.1f}" width="{w_}" height="{h}" '
                             f'viewBox="{x} {height - y - h:.1f} {w_} {h}" overflow="hidden">')
            for line in members:
                parts.append(self._svg_line(line, height, scale))
            if box is not None:
                parts.append("</svg>")
        parts.append("</svg>")
        return "".join(parts)

    @staticmethod
    def _svg_line(line: Line2D, height: int, scale: float) -> str:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy[:, 1] = height - xy[:, 1]
        finite = np.isfinite(xy).all(axis=1)
        xy = np.clip(xy, -1e4, 1e4)  # a point far off the axes: still off them, and a number SVG can take
        alpha = line.get_alpha()
        opacity = f' opacity="{alpha:g}"' if alpha is not None and alpha < 1 else ""
        out = []
        if line.get_linestyle() not in ("None", " ", "") and line.get_linewidth() > 0:
            runs, path = np.split(np.arange(len(xy)), np.flatnonzero(~finite)), []
            for run in runs:  # a NaN (a value a log axis cannot show) breaks the line, as in matplotlib
                run = run[finite[run]]
                if len(run):
                    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy[run])
                    path.append(f"M{points.replace(' ', 'L', 1) if len(run) > 1 else points + 'l0,0'}")
            offset, dashes = line._dash_pattern  # in points, already scaled by the line width
            dash = (f' stroke-dasharray="{" ".join(f"{d * scale:.2f}" for d in dashes)}" '
                    f'stroke-dashoffset="{offset * scale:.2f}"' if dashes else "")
            style = line.get_dash_capstyle() if dashes else line.get_solid_capstyle()
            cap = "square" if style == "projecting" else style  # by default butt dashes, projecting solid lines
            out.append(f'<path d="{"".join(path)}" fill="none" stroke="{to_hex(line.get_color())}" '
                       f'stroke-width="{line.get_linewidth() * scale:.2f}" stroke-linejoin="round" '
                       f'stroke-linecap="{cap}"{dash}{opacity}/>')
        marker, size = line.get_marker(), line.get_markersize() * scale
        if marker not in (None, "None", "", " ") and size > 0:
            face, edge = to_hex(line.get_markerfacecolor(), keep_alpha=True), to_hex(line.get_markeredgecolor())
            edge_width = line.get_markeredgewidth() * scale
            if marker in ("o", "s") and face[:7] == edge and face.endswith("ff"):
                # one colour: a zero-length stroke with round (square) caps is the disc (square) with its edge
                dots = "".join(f"M{x:.1f},{y:.1f}h0" for x, y in xy[finite])
                out.append(f'<path d="{dots}" stroke="{edge}" stroke-width="{size + edge_width:.2f}" '
                           f'stroke-linecap="{"round" if marker == "o" else "square"}"{opacity}/>')
            else:
                points = "".join(map(_marker_at(line, size), xy[finite]))
                fill = "none" if face.endswith("00") else face[:7]
                out.append(f'<path d="{points}" fill="{fill}" stroke="{edge}" stroke-width="{edge_width:.2f}"'
                           f'{opacity}/>')
        return "".join(out)

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


def plot_layer_curves(ax, curves: dict, *, xlabel: str, ylabel: str, chosen: str | None = None,
                      styles: dict | None = None, legend: bool = True) -> None:
    """Per-layer curves on a log axis (x = 1, 2, ... n), in the course's colours, with whole-number ticks.

    `chosen` names the curve drawn bold with markers; the others are drawn faint behind it, for
    comparison (residual, transformer). Without it each curve takes its format from `styles`
    (label -> "o", "-", ...; default "o-").
    """
    for i, (label, values) in enumerate(curves.items()):
        if chosen is None:
            fmt, extra = (styles or {}).get(label, "o-"), {}
        else:
            bold = label == chosen
            fmt, extra = "o-" if bold else "-", {"alpha": 1.0 if bold else 0.35, "linewidth": 1.5 if bold else 1}
        ax.semilogy(np.arange(1, len(values) + 1), values, fmt, markersize=3, color=OKABE_ITO[i], label=label,
                    **extra)
    ax.set_xlabel(xlabel)
    integer_ticks(ax)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)


def _svg_can_draw(artist) -> bool:
    """Whether `Explorer._svg` draws `artist` as matplotlib would: a plain line (no steps, every marker)."""
    return isinstance(artist, Line2D) and artist.get_drawstyle() == "default" and artist.get_markevery() is None


def _marker_at(line: Line2D, size: float):
    """A function from a point (pixels) to the SVG path of `line`'s marker there, `size` pixels across."""
    r = size / 2
    if line.get_marker() == "o":  # two arcs
        arc = f"a{r:.2f},{r:.2f} 0 1,0"
        return lambda p: f"M{p[0] - r:.1f},{p[1]:.1f}{arc} {size:.2f},0{arc} {-size:.2f},0z"
    if line.get_marker() == "s":
        return lambda p: f"M{p[0] - r:.1f},{p[1] - r:.1f}h{size:.2f}v{size:.2f}h{-size:.2f}z"
    style = line._marker  # any other marker: matplotlib's own path, scaled to `size`, y pointing down
    path = style.get_path().transformed(style.get_transform())
    commands = {Path.MOVETO: "M", Path.LINETO: "L", Path.CURVE3: "Q", Path.CURVE4: "C"}

    def at(p):
        parts = []
        for vertices, code in path.iter_segments(simplify=False, curves=True):
            if code == Path.CLOSEPOLY:
                parts.append("z")
                continue
            xy = vertices.reshape(-1, 2) * [size, -size] + p
            parts.append(commands[code] + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy))
        return "".join(parts)
    return at


STATIC_NOTE = "A saved copy of this explorer: run the cell to move its sliders again."
# The saved copy follows the widget's output. While the live explorer is on the page, hide the copy;
# while it is not (model gone: "Error displaying widget", or still loading), hide the widget's output.
_STATIC_CSS = (".jp-OutputArea-child:has(.course-explorer) + .jp-OutputArea-child:has(.course-explorer-static)"
               "{display:none}"
               ".jp-OutputArea-child:has(:is([data-mime-type='application/vnd.jupyter.widget-view+json'],"
               ".jupyter-widgets)):not(:has(.course-explorer)):has(+ .jp-OutputArea-child .course-explorer-static)"
               "{display:none}")
