"""Production requests: the spd-requests client, request pages, path autocomplete, reconciliation."""
