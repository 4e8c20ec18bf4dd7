"""JupyterLab in headless Chromium, for the browser tests and benchmarks/bench_widgets.py.

`lab_server` starts JupyterLab on 127.0.0.1 (a free port, a random token,
its own config/data/runtime/settings folders) and always shuts it down, its
kernels included; `chromium_page` opens Chromium (or Chrome: $CHROMIUM, else
the one scripts/setup_system.py finds) through Playwright and always closes it.
`Notebook` drives one notebook in the page the way a student does: open, Run All Cells, find the explorers, press keys.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.setup_system import find_browser  # noqa: E402  one lookup for the setup script and the tests

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# JupyterLab settings for a quiet, deterministic page: no news or update toasts, every cell
# attached to the DOM (no virtual scrolling), no autosave writing to the files under test.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def explorer_names(nb: nbformat.NotebookNode) -> set[str]:
    """Names the notebook imports from course_lib.widgets (factories and classes)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for match in re.finditer(r"from\s+course_lib\.widgets\s+import\s+(\([^)]*\)|[^\n]+)", cell.source):
            names |= {n.strip().split(" as ")[-1].strip() for n in match.group(1).strip("()").split(",")
                      if n.strip()}
    return names


def explorer_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells tagged demo that build an explorer from course_lib.widgets."""
    names = explorer_names(nb)
    pattern = re.compile(r"\b(widgets\.\w+|" + "|".join(map(re.escape, sorted(names))) + r")\s*\(" if names
                         else r"\bwidgets\.\w+\s*\(")
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and "demo" in cell.metadata.get("tags", [])
            and "course_lib.widgets" not in cell.source and pattern.search(cell.source)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", timeout: float = 5):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
        return json.loads(body) if body else None


class Lab:
    """A running JupyterLab: ``url``, ``token``, ``root`` (its notebook folder), ``log``.

    `expose_app` makes the app reachable from the page as ``window.jupyterapp`` (tests read its models).
    """

    def __init__(self, root: Path, work: Path, *, expose_app: bool = False):
        self.root, self.work, self.expose_app = root, work, expose_app
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "jupyterlab.log"
        self.process: subprocess.Popen | None = None

    def api(self, path: str, method: str = "GET"):
        return _request(f"{self.url}/api/{path}?token={self.token}", method)

    def start(self, timeout: float = 120) -> None:
        settings = self.work / "settings"
        for name, values in LAB_SETTINGS.items():
            target = settings / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(self.work / "config"),
               "JUPYTER_DATA_DIR": str(self.work / "data"), "JUPYTER_RUNTIME_DIR": str(self.work / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(self.work / "workspaces"),
               "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                   f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.work / 'workspaces'}",
                   "--ServerApp.disable_check_xsrf=True"] + (["--allow-root"] if os.geteuid() == 0 else [])
        if self.expose_app:
            command.append("--LabApp.expose_app_in_browser=True")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Shut down the kernels, then the server; kill what is left of its process group."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            for kernel in self.api("kernels") or []:
                self.api(f"kernels/{kernel['id']}", method="DELETE")
            self.api("shutdown", method="POST")
            self.process.wait(timeout=20)
        except Exception:  # noqa: BLE001 - whatever happened, make sure the process is gone
            pass
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)


@contextmanager
def lab_server(root: Path, work: Path, **options):
    """Yield a started `Lab` serving `root` (options: see `Lab`); always stops it."""
    lab = Lab(root, work, **options)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def require_chromium() -> str:
    """The Chromium (or Chrome) executable, or an error that says how to install it (tests fail, never skip)."""
    path, problem = find_browser()
    if path is None:
        raise FileNotFoundError(problem)
    return path


@contextmanager
def chromium_page(*, width: int = 1280, height: int = 1000):
    """Yield (browser, page) in headless Chromium; records console errors in ``page.errors``."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(f"page error: {error}"))
            yield browser, page
        finally:
            browser.close()


def notebook_copy(nb: nbformat.NotebookNode, folder: Path, name: str) -> str:
    """Write `nb` (outputs cleared) as folder/name.ipynb; returns the file name."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, folder / f"{name}.ipynb")
    return f"{name}.ipynb"


# In-page helpers: state of the explorers and of the cells, read in one round trip. An explorer's figure
# is a PNG (img.course-explorer-figure) with the moving lines drawn over it as SVG
# (.course-explorer-curves svg, numbered by data-frame): ``src`` names both, so it changes with either.
EXPLORER_STATE_JS = """
() => [...document.querySelectorAll('.course-explorer')].map(el => {
    const img = el.querySelector('img.course-explorer-figure');
    const svg = el.querySelector('.course-explorer-curves svg');
    const cell = el.closest('.jp-Cell');
    const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
    return {
        cell: cells.indexOf(cell),
        controls: el.querySelectorAll('.course-explorer-controls > .jupyter-widgets').length,
        sliders: el.querySelectorAll('.widget-slider').length,
        src: img ? img.getAttribute('src') + (svg ? '#frame' + svg.dataset.frame : '') : null,
        image: img ? img.getAttribute('src') : null,
        curves: svg ? svg.querySelectorAll('path').length : 0,
        loaded: img ? (img.complete && img.naturalWidth > 0) : false,
        width: img ? img.naturalWidth : 0,
        verdict: (el.querySelector('.course-explorer-verdict') || {}).innerText || '',
        error: !!el.querySelector('.course-explorer-error'),
        saved: (cell && cell.querySelector('.course-explorer-static img') || {src: null}).src,
    };
})
"""

CELL_STATE_JS = r"""
() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).innerText || '',
    errors: [...cell.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr'
                     && /Traceback \(most recent call last\)|^\w*(Error|Exception):/m.test(o.innerText)
                     || /Error displaying widget|Error rendering/.test(o.innerText))
        .map(o => o.innerText.slice(0, 3000)),
}))
"""


class Notebook:
    """One notebook open in JupyterLab in `page`."""

    def __init__(self, lab: Lab, page, filename: str):
        self.lab, self.page, self.filename = lab, page, filename

    def open(self, *, workspace: str = "test", timeout: float = 120) -> None:
        """Open the notebook in a new workspace (no tabs restored from an earlier notebook)."""
        self.page.goto(f"{self.lab.url}/lab/workspaces/{workspace}/tree/{self.filename}?token={self.lab.token}",
                       timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout * 1000)
        self.wait_for_kernel_idle(timeout)

    def wait_for_kernel_idle(self, timeout: float) -> None:
        """Wait until the server has a started, idle kernel and the page shows it idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                kernels = self.lab.api("kernels") or []
            except OSError:  # the server can answer 500 while a kernel is starting
                kernels = []
            if kernels and all(k.get("execution_state") == "idle" for k in kernels):
                break
            time.sleep(0.3)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                                    timeout=max(1.0, deadline - time.monotonic()) * 1000)
        self.page.wait_for_timeout(500)

    def _click_run_all(self) -> None:
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).first.click()

    def run_all(self, timeout: float = 600) -> list[dict]:
        """Run All Cells from the menu; wait until every code cell has run or the run stopped at an error.

        A stopped run leaves the cells after the error unnumbered (a failed check shows only its
        message, so the error itself may not look like one): no cell pending and the kernel idle.
        """
        for _ in range(3):  # a click that lands while the kernel connects runs nothing: click again
            self._click_run_all()
            started = time.monotonic() + 20
            while time.monotonic() < started:
                prompts = [c["prompt"] for c in self.cells() if c["code"]]
                if any(re.search(r"\[(\*|\d+)\]", p) for p in prompts):
                    break
                time.sleep(0.3)
            else:
                continue
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cells = self.cells()
            prompts = [c["prompt"] for c in cells if c["code"]]
            if not any("*" in p for p in prompts):
                status = self.page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
                if status == "idle":
                    return cells
            time.sleep(0.5)
        raise TimeoutError(f"{self.filename}: cells still running after {timeout:.0f} s")

    def cells(self) -> list[dict]:
        return self.page.evaluate(CELL_STATE_JS)

    def explorers(self) -> list[dict]:
        return self.page.evaluate(EXPLORER_STATE_JS)

    def explorer(self, index: int):
        return self.page.locator(".course-explorer").nth(index)

    def slider_handle(self, explorer_index: int, slider_index: int):
        return self.explorer(explorer_index).locator(".widget-slider").nth(slider_index).locator(".noUi-handle")

    def press(self, explorer_index: int, slider_index: int, key: str = "ArrowRight") -> str | None:
        """Move a slider one step with the keyboard; returns the key, or None at the end of its range."""
        handle = self.slider_handle(explorer_index, slider_index)
        handle.scroll_into_view_if_needed()
        now, low, high = (float(handle.get_attribute(a) or 0)
                          for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
        if (key == "ArrowRight" and now >= high) or (key == "ArrowLeft" and now <= low):
            return None
        handle.focus()
        handle.press(key)
        return key

    def wait_for_change(self, explorer_index: int, before: dict, *, timeout: float = 60,
                        verdict_timeout: float = 3) -> dict:
        """Wait until the explorer shows a new, loaded figure, then briefly for a new verdict; returns its state."""
        deadline = time.monotonic() + timeout
        state = before
        while time.monotonic() < deadline:
            state = self.explorers()[explorer_index]
            if state["loaded"] and state["src"] != before["src"]:
                break
            time.sleep(0.05)
        deadline = time.monotonic() + verdict_timeout
        while state["verdict"] == before["verdict"] and time.monotonic() < deadline:
            time.sleep(0.05)
            state = self.explorers()[explorer_index]
        return state

    def run_cell(self, index: int, timeout: float = 120) -> str:
        """Run code cell `index` again (select it, Shift+Enter); returns the text of its new output."""
        cell = self.page.locator(".jp-Notebook .jp-Cell").nth(index)
        before = self.cells()[index]["prompt"]
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").first.click()
        self.page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prompt = self.cells()[index]["prompt"]
            if prompt != before and re.search(r"\[\d+\]", prompt):
                return cell.locator(".jp-OutputArea").first.inner_text()
            time.sleep(0.2)
        raise TimeoutError(f"{self.filename}: cell {index} did not run again within {timeout:.0f} s")

    def shutdown_kernels(self) -> None:
        """Stop every kernel of the server (the next notebook gets the CPU to itself)."""
        for kernel in self.lab.api("kernels") or []:
            self.lab.api(f"kernels/{kernel['id']}", method="DELETE")
