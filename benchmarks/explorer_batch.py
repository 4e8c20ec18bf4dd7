"""Does the gradient-flow explorer show the same at its batch (128) as at 256? Random settings, seeds as the yardstick.

    python benchmarks/explorer_batch.py [--settings 120]

For random settings over the explorer's controls (depth, width, weight scale,
seed, activation, init, normalization, residual), the explorer computes at
256 examples, at 256 with the next seed, and at 128 and 64. The first/last
gradient ratio it reports is compared between batch sizes on the same seed,
and between two seeds at 256: what a student already sees by moving the seed
slider is the spread a smaller batch may add without changing the figure.
Writes the "explorer batch" section of benchmarks/README.md.
"""

import argparse
import math
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.sections import write_section  # noqa: E402
from course_lib.seeding import one_torch_thread  # noqa: E402
from course_lib.widgets import GradientFlowExplorer  # noqa: E402

CHOICES = {"depth": [3, 10, 20, 30, 40, 50], "width": [32, 64, 128, 256],
           "weight_scale": [0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0], "seed": list(range(99)),
           "activation": ["sigmoid", "tanh", "relu", "leaky_relu", "gelu"],
           "init": ["default", "small_normal", "xavier", "he", "orthogonal"],
           "norm": ["none", "none", "batch", "layer"], "residual": [False, False, True]}


def decades(a: float, b: float) -> float:
    """|log10(a / b)|; NaN when either is not a positive finite number."""
    return abs(math.log10(a / b)) if all(math.isfinite(x) and x > 0 for x in (a, b)) else math.nan


def measure(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    explorers = {size: GradientFlowExplorer(batch_size=size) for size in (256, 128, 64)}
    rows = []
    for _ in range(count):
        settings = {name: rng.choice(values) for name, values in CHOICES.items()}
        results = {size: explorer.compute(**settings) for size, explorer in explorers.items()}
        results["next seed"] = explorers[256].compute(**{**settings, "seed": settings["seed"] + 1})
        for explorer in explorers.values():
            explorer._networks.clear()  # every setting is new: nothing to reuse
        rows.append({"settings": settings, **{key: (d["ratio"], d["kind"]) for key, d in results.items()}})
    for explorer in explorers.values():
        explorer.close()
    return rows


def report(rows: list[dict]) -> str:
    lines = ["## Explorer batch", "",
             "`python benchmarks/explorer_batch.py`: the gradient-flow explorer's first/last gradient ratio (what "
             f"its verdict reads) on {len(rows)} random settings of its controls, at other batch sizes and at "
             "another seed, against 256 examples on the same seed. Seed to seed is the spread a student already "
             "sees by moving the seed slider.", "",
             "| compared with 256 examples, same seed | median | 75% | 90% | max | verdict differs |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, label in (("next seed", "256 examples, next seed"), (128, "128 examples (the explorer now)"),
                       (64, "64 examples")):
        spread = np.array([decades(r[key][0], r[256][0]) for r in rows])
        spread = spread[np.isfinite(spread)]
        q = np.percentile(spread, [50, 75, 90, 100])
        differs = sum(r[key][1] != r[256][1] for r in rows)
        lines.append(f"| {label} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {q[3]:.2f} | {differs} of {len(rows)} |")
    lines += ["", "Figures are |log10(ratio / ratio at 256)|, in decades (0.30 = a factor 2). Where the verdict "
              "differs at 128, the ratio at 256 -> at 128: "
              + (", ".join(f"{r[256][0]:.3g} ({r[256][1]}) -> {r[128][0]:.3g} ({r[128][1]})"
                           for r in rows if r[128][1] != r[256][1]) or "nowhere") + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=120)
    parser.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/README.md")
    args = parser.parse_args()
    with one_torch_thread():
        text = report(measure(args.settings))
    print(text)
    if not args.no_write:
        write_section("explorer batch", text)


if __name__ == "__main__":
    main()
