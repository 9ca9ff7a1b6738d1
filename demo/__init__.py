"""Deterministic demo and benchmark data: the catalogue it is drawn from and the generator that seeds it."""
