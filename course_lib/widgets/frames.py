"""How an explorer's figure becomes what the page shows: drawing or redrawing it, reusing its layout,
the static part as a PNG rendered once per look, the animated lines as SVG (`FigureFrames`).
"""

import io

from PIL import Image

from .svg import _svg_can_draw, lines_svg


class FigureFrames:
    """The figure side of `Explorer`: `_draw` (draw or redraw, then lay out only when needed), `_frame`
    (PNG and SVG for the page) and `_render` (the whole figure as a PNG).

    Uses the explorer's ``figure``, ``canvas``, ``dpi``, ``browser_draws``, `draw` and `redraw`, and
    the caches `Explorer.__init__` sets up (``_layout``, ``_backgrounds``, ``_static_pngs``, ...).
    """

    def _draw(self, data: dict) -> None:
        if self._drawn:
            views = self._views()
            if self.redraw(self.figure, data):
                # wider y tick labels need new margins; the labels (a millisecond to format) change only
                # with the limits
                if self._views() != views and self._tick_label_lengths() != self._laid_out_lengths:
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
            self._laid_out_lengths = self._tick_label_lengths()
        else:
            self._run_layout()

    def _run_layout(self) -> None:
        self._layout_key = self._layout_signature()
        self._layout.execute(self.figure)
        self._positions = [ax.get_position() for ax in self.figure.axes]
        self._laid_out_lengths = self._tick_label_lengths()

    def _views(self) -> list:
        """What the tick labels depend on, per axes: limits and scales."""
        return [(ax.get_xlim(), ax.get_ylim(), ax.get_xscale(), ax.get_yscale()) for ax in self.figure.axes]

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
        """The lines as SVG paths in the figure's pixels (`lines_svg`), each SVG numbered."""
        width, height = self.canvas.get_width_height()
        self._svgs += 1
        return lines_svg(lines, width, height, self.dpi / 72, self._svgs)
