"""Adding pools through the form, the admin and the commands: clear errors, nothing saved on
bad input, and the password never shown anywhere."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from unittest import mock

import pytest

from pools.forms import PoolForm
from pools.models import Pool
from pools.xapi import fetch_certificate_fingerprint
from tests.fixtures.pools import urls
from tests.fixtures.processes import free_port

# The database tests also run on PostgreSQL (make test: -m django_db).
pytestmark = [pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]

SECRET = "Pw-x7Qe-secret"


def form_data(sim=None, **overrides) -> dict:
    data = {
        "name": "lab",
        "master_url": sim.url if sim else "http://127.0.0.1:1",
        "username": "root",
        "password": sim.password if sim else "pw",
        "tls_mode": "pin",
        "tls_fingerprint": "",
        "enabled": "on",
        "test_connection": "on",
    }
    data.update(overrides)
    return data


def valid_form(sim=None, pool: Pool | None = None, **overrides) -> PoolForm:
    """The form filled with ``form_data(sim, **overrides)`` (editing ``pool`` if given), checked
    valid."""
    form = PoolForm(form_data(sim, **overrides), instance=pool)
    assert form.is_valid(), form.errors
    return form


@pytest.fixture
def secret_sim(xapisim_factory):
    return xapisim_factory(password=SECRET)


# --- the form ----------------------------------------------------------------------------------


def test_a_reachable_pool_is_saved_with_its_password_encrypted(secret_sim, db):
    form = valid_form(secret_sim)
    pool = form.save()
    assert form.xapi_pool_name
    stored = Pool.objects.values_list("password_encrypted", flat=True).get()
    assert SECRET not in stored
    assert pool.get_password() == SECRET


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"master_url": "ftp://x"}, "master_url", "must start with https:// or http://"),
        ({"master_url": "http://no-such-host.invalid"}, "master_url", "no XAPI answered at"),
        ({"password": "wrong"}, "password", "XAPI refused the user name or password"),
        ({"password": ""}, "password", "This field is required"),
        ({"username": " "}, "username", "This field is required"),
        ({"tls_fingerprint": "12:34"}, "tls_fingerprint", "64 hexadecimal digits"),
    ],
)
def test_bad_input_names_the_field_and_saves_nothing(secret_sim, db, overrides, field, message):
    form = PoolForm(form_data(secret_sim, **overrides))
    assert not form.is_valid()
    assert field in form.errors, form.errors
    assert message in " ".join(form.errors[field])
    assert Pool.objects.count() == 0


@pytest.fixture
def not_xapi_servers():
    """Local addresses where no XAPI answers, each in another way: a web server, a listener that
    never answers, a closed port. Yields ``{kind: url}``."""
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    yield {
        "a web server": f"http://127.0.0.1:{web.server_address[1]}",
        "a listener that never answers": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "a closed port": f"http://127.0.0.1:{free_port()}",
        "an unresolvable name": "http://no-such-host.invalid",
    }
    web.shutdown()
    silent.close()


def test_every_way_of_not_reaching_a_xapi_gets_one_message(not_xapi_servers, db, settings):
    """The form must not tell a closed port from an open one: no port scanning through it."""
    settings.POOL_CONNECTION_TEST_TIMEOUT = 1
    for kind, url in not_xapi_servers.items():
        form = PoolForm(form_data(master_url=url))
        assert not form.is_valid(), kind
        assert form.errors["master_url"] == [
            f"no XAPI answered at {url}: check the address and the port, that the master is up, "
            "and that xoweb can reach it"
        ], kind
    assert Pool.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://169.254.169.254", "169.254.169.254"),
        ("https://169.254.0.1:443", "169.254.0.1"),
        ("http://[fd00:ec2::254]", "fd00:ec2::254"),
        ("http://[fe80::1]:80", "fe80::1"),
        ("http://[::ffff:169.254.169.254]", "::ffff:169.254.169.254"),
    ],
)
def test_link_local_and_metadata_addresses_are_refused_before_connecting(db, url, address):
    form = PoolForm(form_data(master_url=url))
    with mock.patch("socket.socket.connect", side_effect=AssertionError("connected")):
        assert not form.is_valid()
    assert form.errors["master_url"] == [
        f"xoweb does not connect to {address}: link-local and cloud metadata addresses are "
        "never a pool master"
    ]


def test_a_name_that_resolves_to_a_metadata_address_is_refused_too(db):
    """The address is checked after resolution, and the connection made to the checked one."""
    metadata = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
    with mock.patch("socket.getaddrinfo", return_value=metadata):
        form = PoolForm(form_data(master_url="http://metadata.google.internal"))
        assert not form.is_valid()
    assert form.errors["master_url"] == [
        "xoweb does not connect to metadata.google.internal (169.254.169.254): link-local and "
        "cloud metadata addresses are never a pool master"
    ]


def test_a_member_given_instead_of_the_master_is_refused(xapisim_factory, db):
    sim = xapisim_factory(hosts=2)
    form = PoolForm(form_data(sim, master_url=urls(sim)[1][0]))
    assert not form.is_valid()
    (error,) = form.errors["master_url"]
    assert "is a pool member, not the master: the master is at" in error
    assert Pool.objects.count() == 0


def test_tls_is_trusted_on_first_use_and_a_mismatch_is_refused(xapisim_factory, db):
    sim = xapisim_factory(tls=True)
    actual = fetch_certificate_fingerprint(urls(sim)[0])
    wrong = ":".join(["AA"] * 32)
    form = PoolForm(form_data(sim, tls_fingerprint=wrong))
    assert not form.is_valid()
    assert f"has fingerprint {actual}, but {wrong} is pinned" in form.errors["tls_fingerprint"][0]
    assert Pool.objects.count() == 0

    form = valid_form(sim)
    assert form.save().tls_fingerprint == actual == form.trusted_fingerprint


def test_a_certificate_no_authority_vouches_for_is_explained_on_the_tls_field(xapisim_factory, db):
    sim = xapisim_factory(tls=True)
    form = PoolForm(form_data(sim, tls_mode="ca"))
    assert not form.is_valid()
    (error,) = form.errors["tls_mode"]
    assert "is not trusted" in error and "pin its fingerprint" in error
    assert "master_url" not in form.errors


def test_the_same_pool_cannot_be_added_twice(secret_sim, db):
    valid_form(secret_sim).save()
    form = PoolForm(form_data(secret_sim, name="again"))
    assert not form.is_valid()
    assert "this pool is already managed by xoweb as 'lab'" in form.errors["master_url"][0]
    assert Pool.objects.count() == 1


def test_editing_keeps_the_password_when_left_empty(secret_sim, db):
    pool = valid_form(secret_sim).save()
    pool = valid_form(secret_sim, pool, name="renamed", password="").save()
    assert pool.name == "renamed" and pool.get_password() == SECRET


# --- pages and admin ---------------------------------------------------------------------------


def test_the_add_page_shows_errors_and_never_the_password(secret_sim, admin_client):
    response = admin_client.post("/pools/add/", form_data(secret_sim, password=SECRET + "x"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "XAPI refused the user name or password" in page
    assert SECRET not in page
    assert Pool.objects.count() == 0

    response = admin_client.post("/pools/add/", form_data(secret_sim), follow=True)
    pool = Pool.objects.get()
    assert response.redirect_chain[-1][0] == f"/pools/{pool.pk}/"
    for url in [
        "/pools/",
        f"/pools/{pool.pk}/",
        f"/pools/{pool.pk}/edit/",
        "/vms/",
        "/admin/pools/pool/",
        f"/admin/pools/pool/{pool.pk}/change/",
    ]:
        page = admin_client.get(url).content.decode()
        assert SECRET not in page, url
        assert pool.password_encrypted not in page, url


def test_the_admin_uses_the_pool_form_with_its_connection_test(secret_sim, admin_client):
    """One form: the admin checks the connection and names the field, like the page."""
    refused = admin_client.post(
        "/admin/pools/pool/add/", form_data(secret_sim, name="via-admin", password="wrong")
    )
    assert refused.status_code == 200
    assert "XAPI refused the user name or password" in refused.content.decode()
    assert not Pool.objects.exists()

    response = admin_client.post(
        "/admin/pools/pool/add/", form_data(secret_sim, name="via-admin"), follow=True
    )
    assert response.redirect_chain, response.content.decode()[:2000]
    pool = Pool.objects.get(name="via-admin")
    assert pool.get_password() == SECRET and pool.xapi_uuid
    page = admin_client.get(f"/admin/pools/pool/{pool.pk}/change/").content.decode()
    assert 'name="password"' in page and 'name="test_connection"' in page
    assert SECRET not in page


def test_form_pages_need_a_login(anonymous_client, db):
    response = anonymous_client.get("/pools/add/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/pools/add/"


# --- commands ------------------------------------------------------------------------------------


def test_pool_add_list_and_remove(secret_sim, run_manage):
    added = run_manage(
        "pool_add", "lab", "--url", secret_sim.url, "--password-stdin", input=SECRET + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert f"pool lab added ({urls(secret_sim)[0]})" in added.stdout
    assert SECRET not in added.stdout + added.stderr
    assert Pool.objects.get(name="lab").get_password() == SECRET

    listed = run_manage("pool_list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "lab" and row["url"] == urls(secret_sim)[0]
    assert set(row) >= {
        "status",
        "stale_since",
        "last_event_at",
        "hosts",
        "srs",
        "vms",
        "vdis",
        "tasks",
    }
    assert SECRET not in listed.stdout
    table = run_manage("pool_list")
    assert "lab" in table.stdout and SECRET not in table.stdout

    missing = run_manage("pool_remove", "nope")
    assert missing.returncode != 0
    assert "NAME: there is no pool named 'nope' (pools: lab)" in missing.stderr
    removed = run_manage("pool_remove", "lab")
    assert removed.returncode == 0 and "pool lab removed" in removed.stdout
    assert not Pool.objects.exists()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--url", "ftp://x"], SECRET, "--url: the address must start with https:// or http://"),
        ([], "wrong", "--password-stdin: XAPI refused the user name or password"),
        ([], "", "--password-stdin: This field is required"),
        (["--fingerprint", "abc"], SECRET, "--fingerprint: a SHA-256 fingerprint is 64"),
    ],
)
def test_pool_add_names_the_bad_option_and_saves_nothing(
    secret_sim, run_manage, args, stdin, message
):
    argv = ["pool_add", "lab", "--password-stdin", *args]
    if "--url" not in args:
        argv += ["--url", secret_sim.url]
    result = run_manage(*argv, input=stdin + "\n")
    assert result.returncode != 0
    assert message in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not Pool.objects.exists()


def test_pool_add_refuses_a_name_in_use(secret_sim, run_manage):
    first = run_manage(
        "pool_add", "lab", "--url", secret_sim.url, "--password-stdin", "--no-test", input=SECRET
    )
    assert first.returncode == 0, first.stderr
    again = run_manage(
        "pool_add", "lab", "--url", secret_sim.url, "--password-stdin", "--no-test", input=SECRET
    )
    assert again.returncode != 0
    assert "NAME: Pool with this Name already exists." in again.stderr
    assert Pool.objects.count() == 1


def test_saving_the_form_keeps_what_the_watcher_wrote_meanwhile(secret_sim, db):
    pool = valid_form(secret_sim).save()
    form = valid_form(secret_sim, pool, name="renamed", password="")
    # The watcher greys the pool while the person's form is being checked.
    Pool.objects.filter(pk=pool.pk).update(status="stale", status_message="lost")
    form.save()
    pool = Pool.objects.get(pk=pool.pk)
    assert (pool.name, pool.status, pool.status_message) == ("renamed", "stale", "lost")
