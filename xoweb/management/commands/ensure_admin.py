"""Create the first admin user once, with a generated password kept in ``var/``."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from xoweb.secrets import read_or_create_secret


class Command(BaseCommand):
    help = "Create the user 'admin' if no superuser exists; its password goes to var/."

    def handle(self, *args, **options) -> None:
        password_file = settings.VAR_DIR / "admin_password"
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"An admin user exists. The first admin password, unless changed since, "
                f"is in {password_file}"
            )
            return
        password = read_or_create_secret(password_file, nbytes=18)
        users.objects.create_superuser("admin", email="", password=password)
        self.stdout.write(f"Created the user 'admin'; its password is in {password_file}")
