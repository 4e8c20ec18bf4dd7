"""The general explorer: a real MLP, its per-layer gradients and activations (notebook 08 and any cell)."""

import copy
import html
import math
from collections import OrderedDict

import ipywidgets as w
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.nn import functional as F

from ..initialization import initialize_
from ..models import MLP, Block, build_mlp
from ..monitoring import GradientMonitor
from ..plotting import OKABE_ITO, integer_ticks, plot_gradient_norms
from ..seeding import flush_denormals, one_torch_thread
from ..verdicts import gradient_ratio
from .base import Explorer
from .scales import decade_limits, format_ratio, layer_range


def _no_grads(params: list) -> None:
    """zero_grad(set_to_none=True) on a list of parameters kept beside the network."""
    for p in params:
        p.grad = None


class GradientFlowExplorer(Explorer):
    """Build a real MLP, run one forward and backward pass, show per-layer gradients and activations.

    On every change the network is `build_mlp(depth, width, activation=...,
    init=..., norm=..., residual=..., weight_scale=..., seed=...)` with a
    10-way linear head, run on a fixed batch of 128 (X ~ N(0, 1), random
    labels, cross-entropy) inside a `GradientMonitor`. Left: ||dL/dW|| and the
    backpropagated ||dL/dh|| per layer (log scale). Right: the std of each
    layer's activations (log scale) and the fraction of its units that are
    saturated (sigmoid, tanh) or dead (the others; the monitor measures only
    the fraction shown, and the other is NaN). The verdict is the monitor's
    `diagnose()`: layer 1 against the last layer, vanishing below 1e-2,
    exploding above 1e2 (on whichever of the two norms is more extreme);
    ``last["ratio"]`` is that ratio (the ||dL/dW|| ratio when healthy, and the
    smallest non-zero one when a norm underflowed to 0 in float32).

    `show` picks the controls (the others stay at the given settings), which
    is how notebooks build smaller explorers from this one. The batch and the
    initialized network are cached (`_network`): a weight-scale change only
    rescales the stored initial weights and a seed change re-initializes the
    cached network, which equals rebuilding with that weight_scale or seed.
    """

    title = "Gradient flow through a deep network"
    defaults = {"depth": 20, "width": 64, "weight_scale": 1.0, "seed": 0,  # sliders first, then choices
                "activation": "tanh", "init": "default", "norm": "none", "residual": False}
    activations = (("sigmoid", "sigmoid"), ("tanh", "tanh"), ("ReLU", "relu"), ("Leaky ReLU", "leaky_relu"),
                   ("GELU", "gelu"))
    inits = (("default", "default"), ("small normal", "small_normal"), ("Xavier", "xavier"), ("He", "he"),
             ("orthogonal", "orthogonal"))
    norms = (("none", "none"), ("BatchNorm", "batch"), ("LayerNorm", "layer"))
    # what the figure and the verdict read: one pass and no optimizer step, so no update:data; and of the
    # two fractions only the one plotted (`fraction`): for sigmoid and tanh a dead unit is saturated too
    metrics = ("grad_norm", "out_grad_norm", "act_mean", "act_std")

    # 128, not 256: half the work, and the figure is statistically the same: on random settings the
    # first/last ratio moves between 128 and 256 examples no more than between two seeds at 256 (median,
    # 90th percentile; benchmarks/explorer_batch.py); only the norms' level shifts, by sqrt(2)
    batch_size = 128
    monitor_class = GradientMonitor  # what records the pass (benchmarks swap in the one before issue 16)

    def __init__(self, *, show=None, batch_size: int | None = None, num_classes: int = 10, **settings):
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; choose from {sorted(self.defaults)}")
        settings = {**self.defaults, **settings}
        show = tuple(self.defaults) if show is None else tuple(show)
        if set(show) - set(self.defaults):
            raise ValueError(f"unknown controls {sorted(set(show) - set(self.defaults))}; "
                             f"choose from {list(self.defaults)}")
        self.batch_size, self.num_classes = batch_size or self.batch_size, num_classes
        self.fixed = {name: value for name, value in settings.items() if name not in show}
        self._batches: OrderedDict = OrderedDict()
        self._networks: OrderedDict = OrderedDict()
        self._direction = 1  # of the last seed step: `work_ahead` draws the seed one step further
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
        """build_mlp(...) for the settings `s`, from a cache of the last 3 architectures.

        A new seed re-initializes the cached network in place: `initialize_` with the seed's
        generator draws exactly what build_mlp(seed=...) draws, without the default init that
        nn.Linear runs first and build_mlp overwrites (15 instead of 38 ms at 50 x 256). A new
        weight scale multiplies the initial weights, as build_mlp(weight_scale=...) does; they are
        kept apart from the live ones only once the scale leaves 1, and a new seed is then drawn
        straight into them (one pass over the weights fewer), or swapped in when `work_ahead` drew it
        already. A new depth (`_regrown`) reuses the blocks of a cached network that differs only in
        depth.
        """
        architecture = self._architecture(s)
        if architecture not in self._networks:
            net, seed = self._regrown(architecture), None  # None: draw every weight below
            if net is None:
                net, seed = build_mlp(s["depth"], s["width"], activation=s["activation"], init=s["init"],
                                      norm=None if s["norm"] == "none" else s["norm"], residual=s["residual"],
                                      out_features=self.num_classes, seed=s["seed"]), s["seed"]
            weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Linear)]
            self._networks[architecture] = {"net": net, "weights": weights, "params": list(net.parameters()),
                                            "seed": seed, "scale": 1.0,
                                            "initial": None}  # None: the live weights are the initial ones
            while len(self._networks) > 3:
                self._networks.popitem(last=False)
        self._networks.move_to_end(architecture)
        cached = self._networks[architecture]
        weights, scale = cached["weights"], s["weight_scale"]
        with torch.no_grad():
            ahead = cached.get("ahead")
            if cached["seed"] is not None and cached["seed"] != s["seed"]:
                self._direction = 1 if s["seed"] > cached["seed"] else -1
            if cached["seed"] != s["seed"] and ahead and ahead["seed"] == s["seed"] and not ahead["left"]:
                self._swap_in(cached, ahead, scale)
                cached["seed"] = s["seed"]
            if cached["seed"] != s["seed"]:
                into = cached["initial"] if scale != 1.0 else None  # a rescale follows: draw into these
                if into is not None:
                    live = [weight.data for weight in weights]
                    for weight, start in zip(weights, into):
                        weight.data = start
                initialize_(cached["net"], s["init"], activation=s["activation"],
                            generator=torch.Generator().manual_seed(s["seed"]))
                if into is not None:
                    for weight, data in zip(weights, live):
                        weight.data = data
                cached["seed"], cached["initial"], cached["scale"] = s["seed"], into, 1.0 if into is None else None
            if cached["scale"] != scale:
                if cached["initial"] is None:
                    cached["initial"] = [weight.detach().clone() for weight in weights]
                for weight, start in zip(weights, cached["initial"]):
                    torch.mul(start, scale, out=weight)  # one pass, not copy_ then mul_
                cached["scale"] = scale
        return cached["net"]

    @staticmethod
    def _architecture(s: dict) -> tuple:
        return s["depth"], s["width"], s["activation"], s["init"], s["norm"], s["residual"]

    @staticmethod
    def _swap_in(cached: dict, ahead: dict, scale: float) -> None:
        """Make the weights `work_ahead` drew the cached network's initial ones (swapping tensors, not
        copying them); with a scale other than 1 they become the kept initial weights and are
        multiplied into the live ones afterwards."""
        live = [m for m in cached["net"].modules() if isinstance(m, torch.nn.Linear)]
        drawn = [m for m in ahead["net"].modules() if isinstance(m, torch.nn.Linear)]
        for a, b in zip(live, drawn):
            if a.bias is not None:
                a.bias.data, b.bias.data = b.bias.data, a.bias.data
        if scale == 1.0:
            for a, b in zip(live, drawn):
                a.weight.data, b.weight.data = b.weight.data, a.weight.data
            cached["initial"], cached["scale"] = None, 1.0
        else:
            spare = cached["initial"] or [torch.empty_like(m.weight) for m in drawn]
            cached["initial"] = [m.weight.data for m in drawn]
            for m, tensor in zip(drawn, spare):
                m.weight.data = tensor
            cached["scale"] = None  # the live weights are multiplied from the new initial ones
        ahead["seed"] = None  # used; the copy waits for the next seed

    def work_ahead(self) -> bool:
        """Draw the weights of the seed one step of the seed slider away, in the direction of the last
        step, one layer per call, into a copy of the network (made once per architecture): the step
        then swaps them in instead of drawing them (at 50 x 256, 20-40% of a seed change). The same
        draws as `initialize_` on the whole network (layer by layer, in build_mlp's order, from that
        seed's generator); a seed typed in or dragged to draws as before.
        """
        with self._lock:
            slider = self.controls.get("seed")
            if slider is None or not self.last:
                return False
            s = {**self.fixed, **self.values}
            cached = self._networks.get(self._architecture(s))
            if cached is None or cached["seed"] != s["seed"]:
                return False
            seed = s["seed"] + self._direction
            if not slider.min <= seed <= slider.max:
                seed = s["seed"] - self._direction
            ahead = cached.setdefault("ahead", {"seed": None, "net": None, "left": []})
            if ahead["seed"] != seed:
                if ahead["net"] is None:
                    ahead["net"] = copy.deepcopy(cached["net"])
                ahead.update(seed=seed, generator=torch.Generator().manual_seed(seed),
                             left=[m for m in ahead["net"].modules() if isinstance(m, torch.nn.Linear)])
                return True
            if not ahead["left"]:
                return False
            with torch.no_grad():
                initialize_(ahead["left"].pop(0), s["init"], activation=s["activation"], generator=ahead["generator"])
            return bool(ahead["left"])

    def _regrown(self, architecture: tuple) -> MLP | None:
        """A cached network that differs only in depth, taken out of the cache and cut or grown to
        `architecture`'s depth (its weights still to be drawn), or None when there is none.

        Construction is most of a depth step at small widths (four modules per block); the weights
        are drawn again in any case, in build_mlp's order, so the result is build_mlp's network.
        """
        depth, width, activation, _, norm, residual = architecture
        donors = [key for key in self._networks if key[1:] == architecture[1:]]
        if not donors:
            return None
        donor = self._networks.pop(min(donors, key=lambda key: abs(key[0] - depth)))["net"]
        blocks = list(donor.blocks[:depth])
        blocks += [Block(width, width, activation=activation, norm=None if norm == "none" else norm,
                         residual=residual) for _ in range(depth - len(blocks))]
        return MLP(blocks, donor.head)

    # -- the explorer contract -------------------------------------------------
    def compute(self, **values) -> dict:
        s = {**self.fixed, **values}
        # denormals flushed as in set_seed and train: fast, and the same result in any thread
        with torch.random.fork_rng(devices=[]), one_torch_thread(), flush_denormals():
            X, y = self._batch(s["width"], s["seed"])
            net = self._network(s)
            cached = self._networks.get(self._architecture(s))  # its parameters: net.zero_grad walks every module
            params = cached["params"] if cached and cached["net"] is net else list(net.parameters())
            _no_grads(params)
            metrics = (*self.metrics, self.fraction(s["activation"]))
            with self.monitor_class(net, keep_values=False, metrics=metrics) as monitor:
                loss = F.cross_entropy(net(X), y)
                loss.backward()
            _no_grads(params)
        grads, flow = monitor.latest("grad_norm"), monitor.latest("out_grad_norm")
        findings = monitor.diagnose()
        # The monitor's verdict (it weighs ||dL/dW|| and ||dL/dh||); its ratio when it finds a problem.
        finding = next((f for kind in ("non-finite", "vanishing", "exploding") for f in findings if f.kind == kind),
                       None)
        kind = finding.kind if finding else "healthy"
        ratios = [r for r in map(gradient_ratio, (grads, flow)) if not math.isnan(r)]
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

    @staticmethod
    def fraction(activation: str) -> str:
        """The fraction of unhealthy units the figure shows: saturated (sigmoid, tanh) or dead (the rest)."""
        return "saturated" if activation in ("sigmoid", "tanh") else "dead"

    def _unhealthy(self, data: dict) -> np.ndarray:
        return np.nan_to_num(data[self.fraction(data["activation"])], nan=0.0)

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
        fraction_ax.set_ylabel(f"{self.fraction(data['activation'])} fraction")
        # x range snapped to a multiple of 5 layers: most depth steps then keep the axes (and their
        # blitted background) as they are
        right = layer_range(data["depth"])
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
