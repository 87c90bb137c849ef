"""Task actions: the status × action × role matrix, commands sent to PanDA, bulk actions."""
