"""PanDA sync: the stored PanDA state of the panel's tasks (bulk polling, final accounting) and the
optional task-status message consumer."""
