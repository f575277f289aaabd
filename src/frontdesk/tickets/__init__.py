"""tickets layer (see DESIGN.md)."""
