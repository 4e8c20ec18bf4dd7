"""The typed contract between the grader and a grading job.

    JobSpec    one student's submission of one assignment, as the grader hands it to a worker
               (built in one place: course/batch.py); travels as JSON to the zygote or a cluster task
    JobResult  what the job gives back: one NotebookResult per notebook, each a CellScore per graded cell

Both convert to and from plain JSON (`to_json` / `from_json`); nothing else reads their dict form.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..isolation.limits import Limits
from ..isolation.machine import Isolation
from .plan import Plan


@dataclass
class CellScore:
    score: float | None
    points: float
    mode: str  # judge | kernel | manual | none
    error: str | None = None
    hidden_failed: bool = False


@dataclass
class NotebookResult:
    notebook: str
    scores: dict[str, CellScore] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    autograded: dict | None = None  # the executed notebook (instructor copy, hidden tests included)
    feedback: dict | None = None  # the same without hidden tests or their outputs
    seconds: float = 0.0
    feedback_html: str | None = None  # the student's page, rendered from `feedback` by the job

    @property
    def status(self) -> str:
        return "flagged" if self.flags else "graded"

    def page_scores(self) -> dict[str, tuple[float, float]]:
        """grade_id -> (score, points): what the feedback page shows."""
        return {grade_id: (s.score, s.points) for grade_id, s in self.scores.items()}

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "status": self.status, "flags": self.flags, "notes": self.notes,
                "scores": {k: vars(v) for k, v in self.scores.items()}, "seconds": self.seconds,
                "autograded": self.autograded, "feedback": self.feedback, "feedback_html": self.feedback_html}

    @classmethod
    def from_json(cls, data: dict) -> NotebookResult:
        return cls(data["notebook"], {k: CellScore(**v) for k, v in data["scores"].items()},
                   list(data["flags"]), list(data["notes"]), data.get("autograded"), data.get("feedback"),
                   data.get("seconds", 0.0), data.get("feedback_html"))


@dataclass
class JobSpec:
    job_id: str
    student: str
    assignment: str
    notebooks: dict[str, dict | None]  # name -> where the submitted file is (files.read_bytes), None: missing
    sources: dict[str, str]  # name -> the source notebook's path
    plans: dict[str, Plan]  # name -> how its tests run (calibration)
    isolation: Isolation
    limits: Limits  # cell_timeout included
    hide: list[str] = field(default_factory=list)  # never visible in a sandbox (course root, submissions, ...)
    key: str | None = None  # over everything that decides the result (course/batch.job_key)
    feedback: bool = True  # render the feedback pages
    cache_dir: str | None = None  # the batch's test cache (judging/cache.py); None: no cache
    result_path: str | None = None  # where the job writes its JobResult
    problems: list[str] = field(default_factory=list)  # flags found when the submission was listed

    def to_json(self) -> dict:
        data = asdict(self)
        data["plans"] = {name: plan.to_json() for name, plan in self.plans.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> JobSpec:
        data = dict(data)
        data["plans"] = {name: Plan(**plan) for name, plan in data["plans"].items()}
        data["isolation"] = Isolation(**data["isolation"])
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


@dataclass
class JobResult:
    job_id: str
    student: str
    assignment: str
    key: str | None
    notebooks: dict[str, NotebookResult]
    seconds: float = 0.0
    isolation: str | None = None  # the isolation mode it ran under

    @property
    def flagged(self) -> bool:
        return any(result.flags for result in self.notebooks.values())

    def to_json(self) -> dict:
        return {"job_id": self.job_id, "student": self.student, "assignment": self.assignment, "key": self.key,
                "notebooks": {name: result.to_json() for name, result in self.notebooks.items()},
                "seconds": self.seconds, "isolation": self.isolation}

    @classmethod
    def from_json(cls, data: dict) -> JobResult:
        return cls(data["job_id"], data["student"], data["assignment"], data.get("key"),
                   {name: NotebookResult.from_json(nb) for name, nb in data["notebooks"].items()},
                   data.get("seconds", 0.0), data.get("isolation"))

    @classmethod
    def load(cls, path) -> JobResult | None:
        """The result a job wrote to `path`, or None when there is none (the job died before writing it)."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
