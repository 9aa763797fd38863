"""Pure helpers of the pools app: addresses, fingerprints, task results, encryption at rest."""

from __future__ import annotations

import pytest

from pools import crypto
from pools.xapi import (
    normalise_fingerprint,
    normalise_url,
    parse_task_result,
    url_for_address,
)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("10.0.0.1", "https://10.0.0.1"),
        ("https://xcp1.example/", "https://xcp1.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("  HTTPS://Xcp1.Example:443  ", "https://xcp1.example:443"),
        ("https://[fe80::1]:8443", "https://[fe80::1]:8443"),
    ],
)
def test_normalise_url_accepts_master_addresses(typed, expected):
    assert normalise_url(typed) == expected


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "enter the address of the pool master"),
        ("ftp://host", "must start with https:// or http://, not ftp://"),
        ("https://root:pw@host", "put the user name and password in their own fields"),
        ("https://host:99999", "is not a number between 1 and 65535"),
        ("https://host/RPC2", "without a path or query"),
        ("https://", "has no valid host name"),
    ],
)
def test_normalise_url_explains_what_is_wrong(typed, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        normalise_url(typed)


def test_url_for_address_keeps_scheme_and_port_of_the_configured_master():
    assert url_for_address("10.0.0.2", like="https://10.0.0.1") == "https://10.0.0.2"
    assert url_for_address("10.0.0.2", like="http://10.0.0.1:8080") == "http://10.0.0.2:8080"
    assert url_for_address("127.0.0.1:4567", like="http://127.0.0.1:1234") == (
        "http://127.0.0.1:4567"
    )


def test_fingerprints_are_normalised_and_checked():
    digits = "ab" * 32
    expected = ":".join(["AB"] * 32)
    assert normalise_fingerprint(digits) == expected
    assert normalise_fingerprint("SHA256:" + ":".join(["ab"] * 32)) == expected
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        normalise_fingerprint("ab:cd")
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        normalise_fingerprint("zz" * 32)


def test_task_results_are_xmlrpc_fragments():
    assert parse_task_result("<value>OpaqueRef:abc</value>") == "OpaqueRef:abc"
    assert parse_task_result("") == ""


def test_passwords_are_encrypted_with_a_key_from_the_settings(settings):
    token = crypto.encrypt_secret("s3cret-pw")
    assert "s3cret-pw" not in token
    assert crypto.decrypt_secret(token) == "s3cret-pw"
    settings.SECRET_KEY = "another secret key entirely"
    with pytest.raises(crypto.CredentialsUnreadable, match="enter the password again"):
        crypto.decrypt_secret(token)


def test_an_explicit_credentials_key_is_used(settings):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    settings.POOL_CREDENTIALS_KEY = key
    token = crypto.encrypt_secret("pw")
    assert Fernet(key).decrypt(token.encode()) == b"pw"
