# nbgrader configuration of the course root (this folder). Plain `nbgrader`
# commands run here use it, and so does `python -m autograder`.
c = get_config()  # noqa: F821 (provided by traitlets)

c.CourseDirectory.course_id = "vanishing-gradients"
# A shared gradebook (README "On a cluster"): its URL from the environment, never from this repository,
# e.g. AUTOGRADER_DB_URL=postgresql://grader@db.example.edu/gradebook; the password in ~/.pgpass.
# Unset: nbgrader's default, the SQLite file gradebook.db in this folder.
import os  # noqa: E402

if os.environ.get("AUTOGRADER_DB_URL"):
    c.CourseDirectory.db_url = os.environ["AUTOGRADER_DB_URL"]
# The authored .py next to each source notebook holds the solutions and
# hidden tests: never copy it into a release or a submission.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Per cell, for plain nbgrader and for `python -m autograder grade`: the slowest solution cell takes
# about 8 s on 2 cores (benchmarks/README.md), so a minute is ample and stops a runaway loop in one.
c.Execute.timeout = 60

# Grading mode: skip demonstration cells (tag "demo"); runs after nbgrader has
# restored the locked cells, so it sees the authored tags of graded cells.
from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells, OverwriteKernelspec  # noqa: E402

from autograder.judging.demo import SkipDemoCells  # noqa: E402

c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
                                      CheckCellMetadata, SkipDemoCells]

# Plain `nbgrader generate_feedback` never copies hidden tests (or their output) into a feedback page.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from autograder.judging.feedback import HideHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
