"""``python -m crossgate``: the same as the ``crossgate`` command."""

import sys

from crossgate.cli import main

if __name__ == "__main__":
    sys.exit(main())
