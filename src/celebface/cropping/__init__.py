"""cropping stage."""
