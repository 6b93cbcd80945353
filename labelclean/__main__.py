"""``python -m labelclean``: the command line (same as ``labelclean`` and ``python -m labelclean.cli``)."""

from .cli import main

if __name__ == "__main__":
    main()
