"""The trusted process: one notebook judged against its source (source model, names, alignment, the
kernel client, trusted runs, the test cache, the Judge), the hidden-test parser, static inspection, the
feedback page, and the job and warm worker that grade one submission. Never imports isolation/shell.py,
the code that runs inside the sandbox."""
