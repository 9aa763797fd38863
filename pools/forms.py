"""The pool form, the only one: the pages, the admin and ``manage.py pool_add`` all use it.

Saving tests the connection first (the one time a person asks xoweb to wait on XAPI, with a
short timeout): every failure becomes an error on the field to fix, and nothing is saved. The
test never connects to a link-local or cloud metadata address, and every way of not reaching a
XAPI (refused, timed out, unresolvable, another server) gets one and the same message, so that
the form cannot be used to scan ports (docs/security.md §Pool connection test).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from pools.choices import TlsMode
from pools.models import Pool
from pools.xapi import (
    AuthenticationFailed,
    ForbiddenAddress,
    HostIsSlave,
    TlsFingerprintMismatch,
    UntrustedCertificate,
    XapiClient,
    XapiConnectionError,
    XapiError,
    normalise_fingerprint,
    normalise_url,
)

#: Longer than any XAPI password, far shorter than what would make the form a burden to check.
MAX_PASSWORD_LENGTH = 1024


def unreachable(url: str) -> str:
    """The one message for every way of not reaching a XAPI at ``url``."""
    return (
        f"no XAPI answered at {url}: check the address and the port, that the master is up, "
        "and that xoweb can reach it"
    )


#: The columns people edit; the others belong to the watcher (read-only in the admin).
EDITED_FIELDS = ["name", "master_url", "username", "tls_mode", "tls_fingerprint", "enabled"]


def save_settings(pool: Pool, *, adding: bool) -> None:
    """Save what a person edited without overwriting what the watcher wrote meanwhile (status,
    stale_since… change while the connection test runs)."""
    if adding:
        pool.save()
    else:
        pool.save(
            update_fields=[
                *EDITED_FIELDS,
                "password_encrypted",
                "xapi_uuid",
                "xapi_name_label",
                "updated_at",
            ]
        )


class PoolForm(forms.ModelForm):
    """Add or edit a pool; the password is write-only (never rendered back)."""

    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        max_length=MAX_PASSWORD_LENGTH,
        help_text="Leave empty to keep the current password.",
    )
    test_connection = forms.BooleanField(
        required=False,
        initial=True,
        label="Test the connection before saving",
        help_text="Untick to save a pool that is not reachable right now.",
    )

    class Meta:
        model = Pool
        fields = EDITED_FIELDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trusted_fingerprint = ""
        self.xapi_pool_name = ""
        self.xapi_uuid = ""
        if self.instance.pk is None:
            self.fields["password"].required = True
            self.fields["password"].help_text = ""

    def clean_master_url(self) -> str:
        try:
            return normalise_url(self.cleaned_data["master_url"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_tls_fingerprint(self) -> str:
        value = self.cleaned_data.get("tls_fingerprint", "").strip()
        if not value:
            return ""
        try:
            return normalise_fingerprint(value)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_username(self) -> str:
        value = self.cleaned_data["username"].strip()
        if not value:
            raise forms.ValidationError("enter the XAPI user name (usually root)")
        return value

    @sensitive_variables("password", "data")
    def clean(self) -> dict:
        data = super().clean()
        if self.errors or not data.get("test_connection"):
            return data
        password = data.get("password") or (
            self.instance.get_password() if self.instance.pk else ""
        )
        self._test_connection(data, password)
        return data

    @sensitive_variables("password", "data")
    def _test_connection(self, data: dict, password: str) -> None:
        url = data["master_url"]
        fingerprints = {url: data["tls_fingerprint"]} if data.get("tls_fingerprint") else {}
        seen: dict[str, str] = {}
        client = XapiClient(
            url,
            data["username"],
            password,
            timeout=settings.POOL_CONNECTION_TEST_TIMEOUT,
            tls_mode=data.get("tls_mode") or TlsMode.PIN,
            fingerprints=fingerprints,
            on_new_fingerprint=lambda address, fingerprint: seen.setdefault(address, fingerprint),
            follow_master=False,
        )
        try:
            with client:
                pool_record = next(iter(client.get_all_records("pool").values()), {})
        except TlsFingerprintMismatch as error:
            self.add_error("tls_fingerprint", str(error))
            return
        except ForbiddenAddress as error:
            self.add_error("master_url", str(error))
            return
        except AuthenticationFailed as error:
            self.add_error("password", str(error))
            return
        except HostIsSlave as error:
            self.add_error("master_url", str(error))
            return
        except UntrustedCertificate as error:
            # A certificate the authorities do not vouch for: the fix is pinning it.
            self.add_error("tls_mode", str(error))
            return
        except XapiConnectionError:
            self.add_error("master_url", unreachable(url))
            return
        except XapiError:
            self.add_error("master_url", unreachable(url))
            return
        self.xapi_pool_name = pool_record.get("name_label", "")
        self.xapi_uuid = pool_record.get("uuid", "")
        self._check_not_already_managed(pool_record.get("uuid", ""))
        if url in seen and not data.get("tls_fingerprint"):
            # Trust on first use: pin what the master showed, and tell the person.
            self.trusted_fingerprint = seen[url]
            data["tls_fingerprint"] = seen[url]

    def _check_not_already_managed(self, xapi_uuid: str) -> None:
        if not xapi_uuid:
            return
        other = Pool.objects.filter(xapi_uuid=xapi_uuid).exclude(pk=self.instance.pk).first()
        if other is not None:
            self.add_error("master_url", f"this pool is already managed by xoweb as {other.name!r}")

    def save(self, commit: bool = True) -> Pool:
        pool = super().save(commit=False)
        if self.cleaned_data.get("password"):
            pool.set_password(self.cleaned_data["password"])
        if self.trusted_fingerprint:
            pool.tls_fingerprint = self.trusted_fingerprint
        if self.xapi_uuid:
            pool.xapi_uuid = self.xapi_uuid
            pool.xapi_name_label = self.xapi_pool_name
        if commit:
            save_settings(pool, adding=pool.pk is None)
        return pool
