"""``manage.py pool_add NAME --url URL --username USER --password-stdin [--fingerprint SHA256]``."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from pools.forms import PoolForm
from xoweb.command_line import decode_line

#: How each form field is spelled on this command line, for error messages.
OPTION_OF_FIELD = {
    "name": "NAME",
    "master_url": "--url",
    "username": "--username",
    "password": "--password-stdin",
    "tls_mode": "--tls-mode",
    "tls_fingerprint": "--fingerprint",
    "enabled": "--disabled",
}


class Command(BaseCommand):
    help = "Add a pool by its master's address; the password is read from standard input."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="a name for the pool in xoweb")
        parser.add_argument(
            "--url", required=True, help="the master's address, e.g. https://10.0.0.1"
        )
        parser.add_argument("--username", default="root", help="XAPI user (default: root)")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            required=True,
            help="read the password from the first line of standard input",
        )
        parser.add_argument(
            "--fingerprint", default="", help="pin this SHA-256 certificate fingerprint"
        )
        parser.add_argument(
            "--tls-mode", default="pin", choices=["pin", "ca"], help="pin (default) or ca"
        )
        parser.add_argument("--disabled", action="store_true", help="add the pool disabled")
        parser.add_argument(
            "--no-test", action="store_true", help="do not test the connection before saving"
        )

    def handle(self, *args, **options) -> None:
        stdin = getattr(sys.stdin, "buffer", None)
        raw = stdin.readline() if stdin is not None else sys.stdin.readline().encode()
        try:
            password = decode_line(raw, "--password-stdin")
        except ValueError as error:
            raise CommandError(str(error)) from None
        form = PoolForm(
            data={
                "name": options["name"],
                "master_url": options["url"],
                "username": options["username"],
                "password": password,
                "tls_mode": options["tls_mode"],
                "tls_fingerprint": options["fingerprint"],
                "enabled": not options["disabled"],
                "test_connection": not options["no_test"],
            }
        )
        if not form.is_valid():
            # One line per problem, each naming its option.
            lines = [
                f"pool not added: {OPTION_OF_FIELD.get(field, field)}: {message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("\n".join(lines))
        pool = form.save()
        self.stdout.write(f"pool {pool.name} added ({pool.master_url})")
        if form.trusted_fingerprint:
            self.stdout.write(f"certificate trusted on first use: SHA-256 {pool.tls_fingerprint}")
