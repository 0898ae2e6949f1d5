"""Finite-difference verification of analytic gradients, kink detection and ``expect`` checks."""
