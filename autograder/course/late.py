"""Late submissions, penalised as `nbgrader autograde` penalises them.

nbgrader's AssignLatePenalties preprocessor, at the end of autograde, asks its plugin
(``c.AssignLatePenalties.plugin_class``: LateSubmissionPlugin by default, whose
``c.LateSubmissionPlugin.penalty_method`` is "none" or "zero"; or the instructor's own, like the SubMarks
example of nbgrader's documentation) for a penalty given the student, the notebook's score and
``SubmittedAssignment.total_seconds_late`` (the timestamp after the assignment's due date in the gradebook,
plus any extension), keeps it within [0, score], and stores it as
``SubmittedNotebook.late_submission_penalty`` (None when on time). The preprocessor itself opens the gradebook
on its own connection and commits; here the same plugin, built by the same preprocessor from the course's
config, is asked inside gradebook.commit's one transaction.
"""

from __future__ import annotations

import math
import sys

from .root import Course

ROW = "late_submission_penalty"  # the question column of a late notebook's penalty row (nbgrader's name)
STATUS = "late penalty"


class Penalties:
    """The course's configured late-submission plugin (built once per grading run)."""

    def __init__(self, course: Course):
        from nbgrader.preprocessors import AssignLatePenalties

        # nbgrader runs from the course root, so a plugin module beside nbgrader_config.py imports by name
        sys.path.insert(0, str(course.root))
        try:
            assigner = AssignLatePenalties(config=course.config)
            assigner.init_plugin()
        finally:
            sys.path.remove(str(course.root))
        self.plugin = assigner.plugin_inst

    def penalty(self, student: str, score: float, seconds_late: float) -> float | None:
        """The penalty for a notebook scoring `score`, `seconds_late` after its due date; None when on time or
        when the plugin assigns none. Bounded to [0, score] as AssignLatePenalties._check_late_penalty does."""
        if seconds_late <= 0:
            return None
        penalty = self.plugin.late_submission_penalty(student, score, seconds_late)
        if penalty is None:
            return None
        return min(max(float(penalty), 0.0), score)


def lateness(seconds: float) -> str:
    """"2 h 10 min": how late, for the grades CSV's reason column."""
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return " ".join(f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n) or "0 min"
