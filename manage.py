#!/usr/bin/env python
"""Django's command-line utility for xoweb."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xoweb.settings")
    from xoweb.command_line import unreadable_argument

    problem = unreadable_argument(sys.argv[2:])
    if problem:
        sys.stderr.write(f"manage.py {sys.argv[1]}: {problem}\n")
        sys.exit(2)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
