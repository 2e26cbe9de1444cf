"""Planted-name transcripts for the pseudonymisation tests and benchmark."""
