"""cnngrad: a gradient calculator and verifier for small convolutional networks."""
__version__ = "0.2.0.dev0"
