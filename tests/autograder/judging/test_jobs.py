"""The typed contract between the grader and a job: JobSpec and JobResult survive JSON unchanged."""

import json

from autograder.isolation.limits import Limits
from autograder.isolation.machine import Isolation
from autograder.judging.jobs import CellScore, JobResult, JobSpec, NotebookResult
from autograder.judging.plan import Plan


def test_a_job_spec_round_trips_through_json():
    spec = JobSpec("alice/mini", "alice", "mini", {"mini": {"path": "/x/mini.ipynb"}, "other": None},
                   {"mini": "/c/source/mini/mini.ipynb"}, {"mini": Plan(prune=False, kernel_tests=["q1_test"])},
                   Isolation("userns", True, False, "", ["no cgroups"]), Limits(cell_timeout=5.0, memory_mb=300),
                   hide=["/c"], key="k", feedback=False, cache_dir="/tmp/cache", result_path="/tmp/r.json",
                   problems=["late"])
    back = JobSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and isinstance(back.plans["mini"], Plan) and back.limits.cell_timeout == 5.0


def test_a_job_result_round_trips_and_keeps_its_feedback_page(tmp_path):
    notebook = NotebookResult("mini", {"q1_test": CellScore(1.0, 2.0, "judge", "AssertionError: x", True)},
                              flags=["suspicious"], notes=["n"], autograded={"cells": []}, feedback={"cells": []},
                              seconds=1.5, feedback_html="<html></html>")
    result = JobResult("alice/mini", "alice", "mini", "k", {"mini": notebook}, 2.0, "root")
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result.to_json()))
    back = JobResult.load(path)
    assert back == result and back.flagged and back.notebooks["mini"].status == "flagged"
    assert back.to_json()["notebooks"]["mini"]["feedback_html"] == "<html></html>"
    path.write_text('{"job_id": ')  # a job killed while writing: no result, not an exception
    assert JobResult.load(path) is None and JobResult.load(tmp_path / "missing.json") is None
