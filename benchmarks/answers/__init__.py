"""Answer quality: evaluation sets (the bundled handbook, a real corpus) and the scorer `make bench` runs."""
