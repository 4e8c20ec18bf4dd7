"""Install what the course needs from the operating system: README Quick start, command 2.

    .venv/bin/python scripts/setup_system.py            # find each need, install what is missing
    .venv/bin/python scripts/setup_system.py --check    # only report (exit 1 if something is missing)

Each *need* is looked for first and installed only when it is missing, so the
script is safe to run again. The needs:

- browser: Chromium or Chrome, which the browser tests drive through
  Playwright (tests/jupyterlab_session.py). Found: $CHROMIUM if set (then
  nothing else is tried), else chromium, chromium-browser, google-chrome or
  chrome on PATH or in their usual places, else a Chromium that
  `playwright install` put in its cache. Installed: `apt-get install chromium`
  where apt has it (Debian), else Playwright's own build with its libraries
  (`playwright install --with-deps chromium`, Ubuntu, whose apt chromium is
  a snap), as root or through sudo.
- cluster: Slurm (slurmctld, slurmd, sbatch, squeue, scontrol, scancel),
  munge (munged and its key) and a PostgreSQL server (initdb, postgres),
  which tests/test_cluster.py starts on localhost to grade through a real
  Slurm into a real PostgreSQL gradebook (tests/cluster.py). Installed:
  Debian's slurm-wlm, munge and postgresql through apt-get, as root or
  through sudo. Nothing is started here: the tests start their own daemons.

A need that cannot be met is printed in one line that says what to install;
the script still exits 0 so the test run that follows reports it (the
browser tests fail with that line, tests/conftest.py). Add a need (a
service the tests use, say) as one more `Need` in NEEDS.

Standard library only: it runs before anything else is known to work.
"""

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = "scripts/setup_system.py"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/opt/google/chrome/chrome",
                 "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                 "/Applications/Chromium.app/Contents/MacOS/Chromium")


def _runs(path: str) -> bool:
    """True if `path --version` exits 0 (Ubuntu's chromium-browser without its snap does not)."""
    try:
        return subprocess.run([path, "--version"], check=False, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _playwright_browsers() -> list[str]:
    """Chromium builds `playwright install chromium` left in its cache, newest first."""
    roots = [os.environ.get("PLAYWRIGHT_BROWSERS_PATH", ""), str(Path.home() / ".cache" / "ms-playwright"),
             str(Path.home() / "Library" / "Caches" / "ms-playwright")]
    found = []
    for root in filter(None, roots):
        for pattern in ("chromium-*/chrome-linux*/chrome",
                        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium"):
            found += sorted(glob.glob(os.path.join(root, pattern)), reverse=True)
    return found


def find_browser() -> tuple[str | None, str]:
    """(path of a working Chromium or Chrome, how it was found) or (None, one line saying what to do)."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        path = shutil.which(wanted)
        if path and _runs(path):
            return path, f"CHROMIUM={wanted}"
        return None, (f"CHROMIUM={wanted} is not a working Chromium or Chrome: point it at one, or unset it "
                      f"and run `.venv/bin/python {SCRIPT}` (as root or with sudo) to install Chromium")
    candidates = [shutil.which(name) for name in BROWSER_NAMES] + list(BROWSER_PATHS) + _playwright_browsers()
    seen = set()
    for path in candidates:
        if path and path not in seen and os.access(path, os.X_OK):
            seen.add(path)
            if _runs(path):
                return path, "found"
    return None, (f"no Chromium or Chrome found: run `.venv/bin/python {SCRIPT}` as root or with sudo "
                  "(it installs Chromium), or install Chromium or Google Chrome, or set CHROMIUM=/path/to/it")


CLUSTER_TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged")
CLUSTER_PACKAGES = ["slurm-wlm", "munge", "postgresql"]
MUNGE_KEY = "/etc/munge/munge.key"


def postgres_bin() -> str | None:
    """The folder with initdb and postgres: Debian keeps them in /usr/lib/postgresql/N/bin, off PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(os.path.join(folder, tool), os.X_OK) for tool in ("initdb", "postgres")):
            return folder
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    return os.path.dirname(initdb) if initdb and postgres else None


def find_cluster() -> tuple[str | None, str]:
    """(what was found, "found") when Slurm, munge and PostgreSQL are all there, else (None, one line)."""
    search = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [tool for tool in CLUSTER_TOOLS if not shutil.which(tool, path=search)]
    if not os.path.exists(MUNGE_KEY):
        missing.append(MUNGE_KEY)
    postgres = postgres_bin()
    if postgres is None:
        missing.append("initdb/postgres")
    if missing:
        return None, (f"missing {', '.join(missing)}: run `.venv/bin/python {SCRIPT}` as root or with sudo "
                      f"(it installs Debian's {', '.join(CLUSTER_PACKAGES)}), or install Slurm, munge and "
                      "PostgreSQL yourself (tests/test_cluster.py needs them)")
    return f"slurm, munge, postgresql in {postgres}", "found"


def install_cluster() -> list[list[str]] | None:
    """Debian's slurm-wlm, munge (its package makes the key) and postgresql through apt-get."""
    if platform.system() != "Linux":
        return None
    return apt_install(CLUSTER_PACKAGES)


# -- installing ---------------------------------------------------------------------------

def _privileged() -> list[str] | None:
    """The prefix that runs a command as root: [] as root, ["sudo"] with sudo, None if neither."""
    if os.geteuid() == 0:
        return []
    return ["sudo"] if shutil.which("sudo") else None


def _apt_has(package: str) -> bool:
    if not shutil.which("apt-cache"):
        return False
    result = subprocess.run(["apt-cache", "show", "--no-all-versions", package], check=False,
                            capture_output=True, text=True)
    # Ubuntu's chromium-browser deb only installs the snap, which containers cannot run
    return result.returncode == 0 and "snap" not in result.stdout.lower()


def apt_install(packages: list[str]) -> list[list[str]] | None:
    """Commands that install `packages` with apt-get, or None where apt-get or root cannot be had."""
    sudo = _privileged()
    if sudo is None or not shutil.which("apt-get"):
        return None
    apt = sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    return [apt + ["update", "-qq"], apt + ["install", "-y", "-qq", "--no-install-recommends", *packages]]


def install_browser() -> list[list[str]] | None:
    """Debian's chromium through apt; elsewhere Playwright's Chromium: its libraries as root, itself as you."""
    if os.environ.get("CHROMIUM") or platform.system() != "Linux" or not shutil.which("apt-get"):
        return None  # an explicit CHROMIUM is the user's choice; other systems: see the message
    if _apt_has("chromium"):
        return apt_install(["chromium"])
    sudo = _privileged()
    if sudo is None:
        return None
    playwright = [sys.executable, "-m", "playwright"]
    return [sudo + playwright + ["install-deps", "chromium"], playwright + ["install", "chromium"]]


@dataclass
class Need:
    name: str
    find: Callable[[], tuple[str | None, str]]
    install: Callable[[], list[list[str]] | None]


NEEDS = [Need("browser", find_browser, install_browser), Need("cluster", find_cluster, install_cluster)]


def meet(need: Need, *, check: bool) -> bool:
    found, how = need.find()
    if found:
        print(f"{need.name}: {found} ({how})")
        return True
    commands = None if check else need.install()
    if commands is None:
        print(f"{need.name}: {how}", file=sys.stderr)
        return False
    for command in commands:
        print(f"{need.name}: running {' '.join(command)}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            print(f"{need.name}: `{' '.join(command)}` failed; {how}", file=sys.stderr)
            return False
    found, how = need.find()
    print(f"{need.name}: {found} (installed)" if found else f"{need.name}: {how}",
          file=sys.stdout if found else sys.stderr)
    return bool(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only look; exit 1 if a need is not met")
    args = parser.parse_args(argv)
    met = [meet(need, check=args.check) for need in NEEDS]
    return 0 if all(met) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
