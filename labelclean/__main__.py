"""``python -m labelclean`` is the ``labelclean`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
