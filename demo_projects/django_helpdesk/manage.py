"""Django's command-line utility for the helpdesk demo.

Run from the repository root: `python -m demo_projects.django_helpdesk.manage <command>`.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the Django management command named on the command line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_projects.django_helpdesk.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
