"""gallery stage."""
