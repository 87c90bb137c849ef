"""Statistics, error summary, progress and ETA, the home dashboard, alerts and estimates (issue 12 §3-7)."""
