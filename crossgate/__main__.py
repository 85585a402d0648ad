"""``python -m crossgate``: the same as the ``crossgate`` command."""

from crossgate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
