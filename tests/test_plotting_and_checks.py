"""Plot helpers (Axes in, Axes out, no global state) and the student-facing checks."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_lib import checks, plotting  # noqa: E402


def test_plots_return_axes_and_leave_global_state_alone():
    rc = dict(matplotlib.rcParams)
    figures = plt.get_fignums()
    ax = plotting.new_axes()
    assert plotting.plot_gradient_norms({"a": [1e-6, 1e-3, 1.0], "b": [1, 1, 1]}, ax=ax) is ax
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    assert plotting.plot_activation_histograms([np.random.rand(100), np.random.rand(100)], ax=ax) is ax
    assert plotting.plot_training_curves({"run": np.linspace(2, 0.1, 50)}, ax=ax, smooth=5) is ax
    assert plotting.plot_layer_metric(np.random.rand(10, 3) + 1e-4, ax=ax, guide=1e-3) is ax
    assert plotting.plot_gradient_norms([1.0, 2.0], ax=ax, bars=True) is ax
    assert plt.get_fignums() == figures  # nothing registered with pyplot
    assert dict(matplotlib.rcParams) == rc


def test_plot_without_ax_makes_a_figure():
    ax = plotting.plot_gradient_norms([1e-3, 1.0])
    assert ax.get_xlabel().startswith("layer")
    plt.close(ax.figure)


def fails(fn, *args, **kwargs) -> str:
    with pytest.raises(checks.CheckFailed) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, AssertionError)
    return str(info.value)


def test_check_close_explains(capsys):
    checks.check_close("q", 1.0, 1.0)
    assert "q: passes" in capsys.readouterr().out
    message = fails(checks.check_close, "q", 2.5, 9.5e-7, mistakes=[(2.5, "you multiplied instead of powered")])
    assert "expected 9.5e-07" in message and "got 2.5" in message and "multiplied instead" in message
    assert "shape" in fails(checks.check_close, "q", np.zeros(3), np.zeros(2))
    assert "NaN" in fails(checks.check_close, "q", float("nan"), 1.0)
    assert "replace it" in fails(checks.check_close, "q", None, 1.0)


def test_check_function_explains():
    def square(x):
        return x * x

    checks.check_function("q", square, [((3.0,), 9.0)])
    message = fails(checks.check_function, "q", lambda x: 2 * x, [((3.0,), 9.0)],
                    mistakes=[(lambda x: 2 * x, "you doubled")])
    assert "expected 9" in message and "got      6" in message and "you doubled" in message

    def mutates(a):
        a[0] = 99.0
        return a.sum()
    assert "changed its input" in fails(checks.check_function, "q", mutates, [((np.ones(2),), 100.0)])

    def unfinished(x):
        raise NotImplementedError()
    assert "NotImplementedError" in fails(checks.check_function, "q", unfinished, [((1.0,), 1.0)])
    assert "raised ZeroDivisionError" in fails(checks.check_function, "q", lambda x: 1 / 0, [((1.0,), 1.0)],
                                              hint="divide later")


def test_choice_and_integer():
    checks.check_choice("q", " a ", "ABCD", expected_digest=checks.digest("A", "01_q5"), salt="01_q5")
    assert "one of" in fails(checks.check_choice, "q", "E", "ABCD")
    assert "because" in fails(checks.check_choice, "q", "B", "ABCD", expected="A", explanations={"B": "because"})
    assert "not the best" in fails(checks.check_choice, "q", "A", "ABCD", expected_digest=checks.digest("A", "other"),
                                   salt="01_q5")  # a digest salted for another question does not match
    with pytest.raises(ValueError, match="salt"):
        checks.check_choice("q", "A", "ABCD", expected_digest=checks.digest("A", "01_q5"))
    assert checks.digest("A", "01_q5") != checks.digest("A", "04_q5")
    assert "an int" in fails(checks.check_integer, "q", 15.0, 15)
    assert "0.25" in fails(checks.check_integer, "q", 14, 15, mistakes=[(14, "0.25**14 is too big")])


def test_failed_check_renders_as_its_message_only():
    """IPython shows `_render_traceback_` instead of a traceback: the message, nothing else."""
    try:
        checks.check_close("Question 1", 1.0, 2.0)
    except checks.CheckFailed as error:
        lines = error._render_traceback_()
    assert "Question 1: not yet right." in lines[0] and "expected 2" in "\n".join(lines)
    assert not any("Traceback" in line or ".py" in line for line in lines)


def test_missing_answer_names_what_to_set():
    assert "set `q3_layers` first" in checks.missing_answer_message("q3_layers")
    assert checks.missing_answer_message("q3_layers").startswith("Question 3:")
    assert checks.missing_answer_message("numpy_thing") is None  # other NameErrors keep their traceback


_INLINE_CELLS = r'''
import hashlib, json, os, sys
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shown = []
shell.display_pub.publish = lambda data, **kw: shown.append(hashlib.md5(str(data["image/png"]).encode()).hexdigest())
pyplot = ("import matplotlib.pyplot as plt\nfrom matplotlib.figure import Figure\ndraws = []\n"
          "_draw = Figure.draw\nFigure.draw = lambda self, renderer: draws.append(1) or _draw(self, renderer)")
course = "import course_lib.plotting"
cells = [pyplot, course] if sys.argv[1] == "after pyplot" else [course, pyplot]
cells.append("fig, ax = plt.subplots(figsize=(6, 3.5), layout='constrained')\nax.semilogy([1, 2, 3], [1e-5, 1e-2, 1])")
for cell in cells:
    assert shell.run_cell(cell).success, cell
print(json.dumps({"draws": len(shell.user_ns["draws"]), "shown": shown}))
'''


def test_importing_plotting_has_the_inline_backend_draw_each_figure_once():
    # a fresh IPython shell per case: the hooks are process-wide state
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    runs = {case: json.loads(subprocess.run([sys.executable, "-c", _INLINE_CELLS, case], capture_output=True,
                                            text=True, check=True, cwd=root).stdout.splitlines()[-1])
            for case in ("before pyplot", "after pyplot")}
    # imported before pyplot, it cannot reorder: pyplot's post-execute draw, the tight-bbox pass and the PNG
    assert runs["before pyplot"]["draws"] == 3
    assert runs["after pyplot"]["draws"] == 2  # as every notebook imports it
    assert len(runs["after pyplot"]["shown"]) == 1 and runs["after pyplot"]["shown"] == runs["before pyplot"]["shown"]
