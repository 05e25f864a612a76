"""Data: DNA sequences, genome access, tracks and datasets (never imports ``enformer.model``)."""
