"""Options several commands share; the limits' defaults come from isolation.limits.Limits."""

from __future__ import annotations

from ..isolation.limits import Limits

DEFAULTS = Limits()


def add_course_root(parser) -> None:
    parser.add_argument("--course-root", default=None, help="nbgrader course root (default: autograder/)")


def add_limits(parser, *, all_limits: bool = False) -> None:
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per cell and per test (default: the course's c.Execute.timeout, "
                             f"else {DEFAULTS.cell_timeout:g})")
    parser.add_argument("--memory-mb", type=int, default=DEFAULTS.memory_mb,
                        help=f"memory per submission (default {DEFAULTS.memory_mb})")
    parser.add_argument("--cpu-seconds", type=int, default=DEFAULTS.cpu_seconds,
                        help=f"CPU time per submission (default {DEFAULTS.cpu_seconds})")
    if all_limits:
        parser.add_argument("--processes", type=int, default=DEFAULTS.processes,
                            help=f"processes/threads per submission (default {DEFAULTS.processes})")
        parser.add_argument("--file-size-mb", type=int, default=DEFAULTS.file_size_mb,
                            help=f"largest file a submission may write (default {DEFAULTS.file_size_mb})")
    parser.add_argument("--isolation", choices=["root", "userns"], default=None,
                        help="force an isolation mode (default: the strongest that works)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even where student code cannot be isolated (trusted submissions only)")


def limits_from(args, course) -> Limits:
    """The limits the command line asks for; the cell timeout from --timeout, else from the course's
    nbgrader config (c.Execute.timeout, what plain nbgrader allows a cell), else Limits' default."""
    timeout = args.timeout
    if timeout is None:
        configured = course.config.Execute.timeout if "timeout" in course.config.Execute else None
        usable = isinstance(configured, (int, float)) and configured > 0
        timeout = float(configured) if usable else DEFAULTS.cell_timeout
    values = {"cell_timeout": timeout, "memory_mb": args.memory_mb, "cpu_seconds": args.cpu_seconds}
    for name in ("processes", "file_size_mb"):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    return Limits(**values)
