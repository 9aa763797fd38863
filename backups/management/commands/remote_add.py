"""``manage.py remote_add NAME --path DIR [--disabled] [--no-test] [--json]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.commandline import dumps, form_error, remote_json
from backups.forms import RemoteForm

OPTION_OF_FIELD = {"name": "NAME", "path": "--path", "enabled": "--disabled"}


class Command(BaseCommand):
    help = "Add a remote (a local or mounted folder); its folder is write-tested first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="a name for the remote")
        parser.add_argument("--path", required=True, help="absolute folder, e.g. /srv/backups")
        parser.add_argument("--disabled", action="store_true", help="add it disabled")
        parser.add_argument("--no-test", action="store_true", help="skip the write test")
        parser.add_argument("--json", action="store_true", help="print the remote as JSON")

    def handle(self, *args, **options) -> None:
        form = RemoteForm(
            data={
                "name": options["name"],
                "path": options["path"],
                "enabled": not options["disabled"],
                "test_folder": not options["no_test"],
            }
        )
        if not form.is_valid():
            raise form_error("remote not added", form, OPTION_OF_FIELD)
        remote = form.save()
        if options["json"]:
            self.stdout.write(dumps(remote_json(remote)))
        else:
            self.stdout.write(
                f"remote {remote.name} added ({remote.path}): {remote.status_message or 'not tested'}"
            )
