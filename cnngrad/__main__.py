"""``python -m cnngrad`` runs the command line."""
from .cli import main

main()
