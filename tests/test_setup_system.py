"""README command 2 on a fresh machine: scripts/setup_system.py finds or installs a browser, .ci/run runs the
same command, and a machine with no browser gets one line that says what to install, never a traceback."""

import os
import re
import stat
import subprocess
import sys

import pytest
from conftest import REPO

from scripts import setup_system


def readme_commands() -> dict[str, str]:
    """{'1': command, '2': command} from the README's Quick start block."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return dict(re.findall(r"^# (\d)\..*\n(.+)$", block, flags=re.MULTILINE))


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    assert commands.keys() == {"1", "2"}
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == commands["2"], "the last command of .ci/run must be README command 2, verbatim"
    assert "rm -rf .venv" in ci, "CI installs from scratch"
    install = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
    assert commands["1"].startswith(install) and commands["2"].startswith(install)
    assert f".venv/bin/python {setup_system.SCRIPT} && .venv/bin/python -m pytest" in commands["2"]
    assert (REPO / setup_system.SCRIPT).is_file()


def fake_browser(folder, *, works: bool = True):
    path = folder / "chrome"
    path.write_text(f"#!/bin/sh\nexit {0 if works else 1}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_browsers(monkeypatch, tmp_path):
    """A machine with no browser anywhere setup_system looks."""
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "playwright"))
    monkeypatch.setattr(setup_system, "BROWSER_PATHS", ())
    (tmp_path / "bin").mkdir()
    return tmp_path / "bin"


def test_finds_a_working_browser_on_path_and_passes_over_a_broken_one(no_browsers):
    path, problem = setup_system.find_browser()
    assert path is None and setup_system.SCRIPT in problem and "\n" not in problem
    fake_browser(no_browsers, works=False)
    assert setup_system.find_browser()[0] is None, "a browser that does not run is no browser"
    browser = fake_browser(no_browsers)
    assert setup_system.find_browser() == (str(browser), "found")


def test_chromium_variable_is_used_and_nothing_else(no_browsers, monkeypatch, tmp_path):
    fake_browser(no_browsers)  # on PATH, but CHROMIUM says otherwise
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "missing"))
    path, problem = setup_system.find_browser()
    assert path is None and problem.startswith(f"CHROMIUM={tmp_path / 'missing'} is not a working")
    assert setup_system.install_browser() is None, "an explicit CHROMIUM is never overridden by an install"
    own = fake_browser(tmp_path)
    monkeypatch.setenv("CHROMIUM", str(own))
    assert setup_system.find_browser()[0] == str(own)


@pytest.mark.parametrize("user, sudo, apt_chromium, expected", [
    ("root", False, True, [["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-qq"],
                           ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                            "--no-install-recommends", "chromium"]]),
    ("user", True, True, [["sudo", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-qq"],
                          ["sudo", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                           "--no-install-recommends", "chromium"]]),
    ("user", True, False, [["sudo", sys.executable, "-m", "playwright", "install-deps", "chromium"],
                           [sys.executable, "-m", "playwright", "install", "chromium"]]),
    ("user", False, True, None),
])
def test_install_plan_as_root_with_sudo_and_without(monkeypatch, user, sudo, apt_chromium, expected):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setattr(setup_system.platform, "system", lambda: "Linux")
    monkeypatch.setattr(setup_system.os, "geteuid", lambda: 0 if user == "root" else 1000)
    tools = {"apt-get", "apt-cache"} | ({"sudo"} if sudo else set())
    monkeypatch.setattr(setup_system.shutil, "which", lambda name: f"/usr/bin/{name}" if name in tools else None)
    monkeypatch.setattr(setup_system, "_apt_has", lambda package: apt_chromium)
    assert setup_system.install_browser() == expected


def test_setup_reports_a_missing_browser_in_one_line_and_lets_the_tests_say_it_again(no_browsers, monkeypatch,
                                                                                    capsys):
    monkeypatch.setattr(setup_system, "install_browser", lambda: None)  # no root, no sudo, no apt
    monkeypatch.setattr(setup_system, "NEEDS", [setup_system.Need("browser", setup_system.find_browser,
                                                                  setup_system.install_browser)])
    assert setup_system.main([]) == 0, "the test run that follows reports it"
    assert setup_system.main(["--check"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("browser: no Chromium or Chrome found") for line in lines)


@pytest.mark.slow
def test_browser_tests_fail_in_one_line_without_a_browser(tmp_path):
    """The conftest hook: every browser test fails with the lookup's one line; no traceback, no skip."""
    missing = tmp_path / "no-such-chromium"
    env = {**os.environ, "CHROMIUM": str(missing), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
                             "-n", "0", "-q", "tests/test_browser.py::test_chromium_is_installed"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "skipped" not in output and "Traceback" not in output and "FileNotFoundError" not in output, output
    section = output.split("ERROR at setup of test_chromium_is_installed", 1)[1].split("\n", 1)[1]
    assert section.splitlines()[0] == (f"CHROMIUM={missing} is not a working Chromium or Chrome: point it at one, "
                                       f"or unset it and run `.venv/bin/python {setup_system.SCRIPT}` "
                                       "(as root or with sudo) to install Chromium"), output
    assert section.splitlines()[1].startswith("="), "one line, then the next section"
