"""Finite-difference verification of analytic gradients, kink detection and ``expect`` checks."""
from .check import DEFAULT_ATOL, DEFAULT_EPS, DEFAULT_RTOL, UnknownQuantity, check_model
from .work import DEFAULT_MAX_WORK, TooMuchWork

__all__ = ["check_model", "UnknownQuantity", "TooMuchWork", "DEFAULT_EPS", "DEFAULT_RTOL", "DEFAULT_ATOL",
           "DEFAULT_MAX_WORK"]
