"""The batch: grading refused without isolation unless asked for."""

import pytest

from autograder.course import batch
from autograder.course.root import GradingError
from autograder.isolation import machine

def test_without_namespaces_grading_is_refused_unless_asked_for(monkeypatch):
    monkeypatch.setattr(machine, "probe", lambda **kwargs: machine.Isolation("none", False, False, "", ["no"]))
    with pytest.raises(GradingError, match="Refusing"):
        batch.require_isolation(unsafe=False)
    messages = []
    assert batch.require_isolation(unsafe=True, log=messages.append).mode == "none"
    assert "WITHOUT isolation" in messages[0]
