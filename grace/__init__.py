"""Grace."""
