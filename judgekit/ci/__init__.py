"""judgekit inside CI: gates over a run, run-to-run diffs, and the pytest plugin."""
