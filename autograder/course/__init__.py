"""The instructor's side of grading; never runs student code: the course root and its config, the
submissions (LMS import), batches of typed jobs, calibration, the gradebook (its only writer), the grades
CSV and the report."""
