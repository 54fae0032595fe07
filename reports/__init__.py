"""Report rendering: human summaries and JSON verdicts for runs."""
