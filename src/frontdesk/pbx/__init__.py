"""pbx layer (see DESIGN.md)."""
