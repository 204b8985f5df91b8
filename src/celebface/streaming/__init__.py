"""streaming stage."""
