"""Launches: the outbox of PanDA submissions (one row per attempt), their state machine, and the
dispatcher that sends each one exactly once."""
