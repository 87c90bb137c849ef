"""PanDA: the client (the only code talking to PanDA), task parameters, the interaction log, the sandbox glue."""
