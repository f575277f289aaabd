"""org layer (see DESIGN.md)."""
