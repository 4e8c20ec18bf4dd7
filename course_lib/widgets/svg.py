"""Lines as SVG paths in a figure's pixels: what the browser draws over the PNG of the rest of an explorer's figure."""

import numpy as np
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.path import Path


def lines_svg(lines: list, width: int, height: int, scale: float, frame: int) -> str:
    """The lines as one SVG of the figure's size (`width` x `height` pixels), numbered `frame` (data-frame),
    each axes' lines clipped to its box, as Agg clips them; `scale`: pixels per point (dpi / 72).

    Pixel for pixel where the lines would be in the PNG: the transform is matplotlib's (log axes
    included); widths, dashes and marker sizes are in points, scaled by `scale`.
    """
    parts = [f'<svg data-frame="{frame}" width="{width}" height="{height}" '
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
            parts.append(svg_line(line, height, scale))
        if box is not None:
            parts.append("</svg>")
    parts.append("</svg>")
    return "".join(parts)


def svg_line(line: Line2D, height: int, scale: float) -> str:
    """One line (its stroke, dashes, markers) as SVG paths in a figure `height` pixels high, `scale` pixels a point."""
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


def _svg_can_draw(artist) -> bool:
    """Whether `lines_svg` draws `artist` as matplotlib would: a plain line (no steps, every marker)."""
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
