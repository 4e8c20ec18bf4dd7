"""`ruff check` is clean on the whole repository (configuration in pyproject.toml)."""

import subprocess
import sys

from autograder import REPO_ROOT


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, "ruff check found problems:\n" + result.stdout[-6000:] + result.stderr[-2000:]
