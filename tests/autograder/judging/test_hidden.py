"""Hidden tests: one parser of the markers; split, stripped, released and redacted."""

import pytest

from autograder.judging import hidden

TEST_CELL = "visible = 1\n### BEGIN HIDDEN TESTS\nsecret_check(answer, 42)\n### END HIDDEN TESTS\nafter = 2"


def test_hidden_tests_are_split_stripped_and_redacted():
    segments = hidden.split_hidden(TEST_CELL)
    assert [hidden for _, hidden in segments] == [False, True, False]
    assert segments[1][0].splitlines()[2] == "secret_check(answer, 42)"  # line numbers kept
    assert "secret_check" not in hidden.strip_hidden(TEST_CELL)
    assert hidden.released_source(TEST_CELL) == "visible = 1\nafter = 2"
    secret = hidden.hidden_lines([TEST_CELL])
    assert hidden.redact("x\nsecret_check(answer, 42)\ny\n", secret) == \
        "x\n[line removed: it quotes a hidden test]\ny\n"


@pytest.mark.parametrize("source, why", [
    ("a = 1\n### BEGIN HIDDEN TESTS\nassert a\n", "without"),
    ("### BEGIN HIDDEN TESTS\nx = 1\n### BEGIN HIDDEN TESTS\ny = 2\n### END HIDDEN TESTS", "inside"),
])
def test_nested_or_unterminated_hidden_regions_are_refused_as_nbgrader_refuses_them(source, why):
    with pytest.raises(hidden.HiddenTestsError, match=why):
        hidden.regions(source)
    with pytest.raises(hidden.HiddenTestsError):
        hidden.released_source(source)
    assert hidden.released_source("a\n### END HIDDEN TESTS\nb") == "a\nb"  # a stray END ends nothing (nbgrader)


def test_the_build_refuses_a_test_cell_with_an_unterminated_hidden_region(tmp_path, monkeypatch):
    from autograder.build import BuildError, read_source

    folder = tmp_path / "99_bad"
    folder.mkdir()
    (folder / "99_bad.py").write_text('# %% nbgrader={"grade_id": "q1_x_test", "grade": true, "points": 1}\n'
                                      "assert True\n### BEGIN HIDDEN TESTS\nassert 1\n", encoding="utf-8")
    monkeypatch.setattr("autograder.build.SOURCE_DIR", tmp_path)
    monkeypatch.setattr("autograder.build.REPO_ROOT", tmp_path)
    with pytest.raises(BuildError, match="without END HIDDEN TESTS"):
        read_source("99_bad")
