"""``python -m cnngrad`` runs the command line."""
from .process import while_loading

while_loading()     # Ctrl-C while the commands load: one line, not a traceback
from .cli import main  # noqa: E402

main()
