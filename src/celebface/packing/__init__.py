"""packing stage."""
