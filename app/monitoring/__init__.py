"""The task tables (current and successful tasks), their filter, paging, exports and records."""
