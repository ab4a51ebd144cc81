"""One folder per model family, behind one `Backend` protocol."""
