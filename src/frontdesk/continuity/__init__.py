"""continuity layer (see DESIGN.md)."""
