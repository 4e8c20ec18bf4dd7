"""Hidden tests: one parser of the markers; split, stripped, released and redacted."""



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
