"""A student who plays only with the visible checks earns at most 10% of any notebook's points.

The bot (tests/gaming_bot.py) sees only the released notebook and what its
cells print; its answers are then graded by `python -m autograder grade`. The
per-question figures are printed (run with -s, or read them in the failure).
"""

import pytest

from autograder import REPO_ROOT
from conftest import NAMES, cached, source_key
from gaming_bot import play
from grading import grade_answers

pytestmark = [pytest.mark.slow]

LIMIT = 0.10


def bot_grades(name: str, root) -> dict:
    workdir = root / "bot"
    workdir.mkdir()
    played = play(REPO_ROOT / "notebooks" / f"{name}.ipynb", workdir)
    result = grade_answers(name, root, {"bot": {gid: q.answer for gid, q in played.items()}})
    result["tries"] = {gid: (len(q.attempts), any(a.passed for a in q.attempts)) for gid, q in played.items()}
    return result


@pytest.mark.parametrize("name", NAMES)
def test_gaming_bot_earns_at_most_a_tenth(shared_cache, tmp_path_factory, name):
    result = cached(shared_cache, f"gaming:{source_key(name)}",
                    lambda: bot_grades(name, tmp_path_factory.mktemp(f"gaming-{name}")))
    scores, points = result["grades"]["bot"]["scores"], result["points"]
    earned, total = sum(s or 0 for s in scores.values()), sum(points.values())
    lines = []
    for q in points:
        tries, passed = result["tries"].get(q, (0, False))
        lines.append(f"  {q}: {scores.get(q) or 0:g} of {points[q]:g} "
                     f"({tries} tries, visible check {'passed' if passed else 'never passed'})")
    report = f"{name}: the gaming bot earned {earned:g} of {total:g} points ({earned / total:.0%})\n" + "\n".join(lines)
    print(report)
    assert earned <= LIMIT * total + 1e-9, report
