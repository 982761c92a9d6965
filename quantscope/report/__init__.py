"""Terminal tables (rich) and reports."""
