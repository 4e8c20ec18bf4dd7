"""Deadlines in the time a test had: wall time minus waiting for a CPU, with a wall-clock backstop."""

from autograder.isolation import clock


def test_a_deadline_counts_wall_time_minus_waiting_for_a_cpu(tmp_path):
    import time

    schedstat = tmp_path / "schedstat"
    schedstat.write_text("0 1000000000 1")
    deadline = clock.Deadline(10.0, lambda: [str(schedstat)])
    time.sleep(0.3)
    schedstat.write_text("0 1250000000 5")  # 0.25 s of the last 0.3 s spent waiting for a CPU
    assert 0.0 <= deadline.elapsed() < 0.3
    assert 9.7 < deadline.remaining() <= 10.0
    starved = clock.Deadline(0.05, lambda: [str(schedstat)])
    time.sleep(0.1)
    schedstat.write_text("0 99000000000 9")  # waited for longer than it ran: only the backstop ends it
    assert starved.remaining() > 0
    time.sleep(0.05 * clock.BACKSTOP)
    assert starved.remaining() <= 0
