"""Finite-difference verification of analytic gradients, kink detection and ``expect`` checks."""
from .check import DEFAULT_ATOL, DEFAULT_EPS, DEFAULT_RTOL, UnknownQuantity, check_model

__all__ = ["check_model", "UnknownQuantity", "DEFAULT_EPS", "DEFAULT_RTOL", "DEFAULT_ATOL"]
