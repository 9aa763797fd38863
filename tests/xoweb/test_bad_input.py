"""Bad input, wherever a person or a script can type: a 400 or a form error naming the field, a
one-line error naming the option — never a 500, a traceback, or a silently mangled value.

One table per door (addresses and forms, manage.py commands, the simulator's command line),
then the checks that walk every URL so that pages added later are held to the same rule.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from pools.models import Pool
from tasks.models import Task
from tests.accounts.urlwalk import every_route
from tests.fixtures.processes import ROOT, process_env
from xoweb.errors import bad_request_response

BIG = "99999999999999999999999"
PAST_BIGINT = str(2**63)
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class Web:
    what: str
    method: str
    url: str
    status: int
    says: str
    body: bytes | None = None


WEB = [
    Web("huge pool id on /vms/", "get", f"/vms/?pool={BIG}", 400, f"pool: '{BIG}' is not an id"),
    Web(
        "huge pool id on /tasks/", "get", f"/tasks/?pool={BIG}", 400, f"pool: '{BIG}' is not an id"
    ),
    Web("huge pool id on /tasks/api/", "get", f"/tasks/api/?pool={BIG}", 400, "pool: '9999"),
    Web("pool id just past bigint", "get", f"/vms/?pool={PAST_BIGINT}", 400, "is not an id"),
    Web("a digit int() refuses", "get", "/vms/?pool=%C2%B2", 400, "pool: '²' is not an id"),
    Web("a negative pool id", "get", "/tasks/?pool=-1", 400, "pool: '-1' is not an id"),
    Web(
        "a search of 50,001 characters",
        "get",
        "/vms/?q=" + "a" * 50_001,
        400,
        "q: a search is at most 200 characters; this one has 50001",
    ),
    Web(
        "a garbage sort",
        "get",
        "/vms/?sort=name;drop",
        400,
        "sort: 'name;drop' is not one of name, -name, power, -power, pool, -pool",
    ),
    Web("a garbage kind", "get", "/vms/?kind=all%27", 400, 'kind: "all\'" is not one of'),
    Web("a garbage page", "get", "/vms/?page=abc", 400, "page: 'abc' is not a page number"),
    Web("page zero", "get", "/tasks/?page=0", 400, "page: '0' is not a page number"),
    Web("a huge page", "get", f"/tasks/api/?page={'9' * 5000}", 400, "is not a page number"),
    Web("a page past the last", "get", "/vms/?page=424242", 200, "VMs"),
    Web("a garbage status", "get", "/tasks/?status=sleepy", 400, "status='sleepy' is not a"),
    Web("task id past bigint", "get", f"/tasks/{BIG}/", 404, "There is nothing at"),
    Web("task id just past bigint", "get", f"/tasks/{PAST_BIGINT}/json/", 404, ""),
    Web("pool id past bigint", "post", f"/pools/{BIG}/delete/", 404, ""),
    Web("id zero", "get", "/pools/0/", 404, ""),
    Web("a NUL in a search", "get", "/vms/?q=a%00b", 400, "q: the value contains a NUL character"),
    Web("a search not in UTF-8", "get", "/vms/?q=%E9t%E9", 400, "q: the value is not valid UTF-8"),
    Web(
        "a pool name not in UTF-8",
        "post",
        "/pools/add/",
        400,
        "name: the value is not valid UTF-8 text",
        b"name=%E9t%E9&master_url=http%3A%2F%2F127.0.0.1%3A1&username=root&password=pw",
    ),
    Web(
        "a NUL in a posted field",
        "post",
        "/pools/add/",
        400,
        "username: the value contains a NUL character",
        b"name=lab&master_url=http%3A%2F%2F127.0.0.1%3A1&username=ro%00ot&password=pw",
    ),
    Web(
        "a 3 MB password",
        "post",
        "/pools/add/",
        400,
        "the form sent more than 2.5 MB, the most xoweb accepts",
        b"name=lab&master_url=http%3A%2F%2F127.0.0.1%3A1&username=root&password="
        + b"x" * (3 * MEGABYTE),
    ),
    Web(
        "a 1 MB password",
        "post",
        "/pools/add/",
        200,
        "Ensure this value has at most 1024 characters (it has 1048576)",
        b"name=lab&master_url=http%3A%2F%2F127.0.0.1%3A1&username=root&password=" + b"x" * MEGABYTE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("case", WEB, ids=[case.what for case in WEB])
def test_bad_input_on_the_web_gets_a_clear_answer_and_changes_nothing(client, case):
    if case.body is None:
        response = getattr(client, case.method)(case.url)
    else:
        response = client.post(
            case.url, case.body, content_type="application/x-www-form-urlencoded"
        )
    text = response.content.decode(errors="replace")
    assert response.status_code == case.status, text[-2000:]
    assert case.says in text.replace("&#x27;", "'").replace("&quot;", '"')
    assert "Traceback" not in text
    assert not Pool.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["javascript:alert(1)", "data:text/html,<script>x</script>"])
def test_a_javascript_or_data_link_is_refused_and_never_rendered(client, scheme):
    with pytest.raises(ValidationError) as refused:
        Task(name="export", about_label="VM web", about_url=scheme).full_clean()
    assert "a link must be a page of this site" in str(refused.value.message_dict["about_url"])

    # A row written past the validation (by code) is shown, but never as a link.
    task = Task.objects.create(name="export", about_label="VM web", about_url=scheme)
    for url in (f"/tasks/{task.pk}/", "/tasks/"):
        page = client.get(url).content.decode()
        assert "VM web" in page and scheme.split(":")[0] + ":" not in page
    assert client.get(f"/tasks/{task.pk}/json/").json()["about_url"] == ""
    Task(name="ok", about_url="/pools/1/").full_clean()
    Task(name="ok", about_url="https://xo.example/").full_clean()


@pytest.mark.django_db
def test_every_url_with_an_id_answers_404_to_ids_past_the_largest(client_as, make_user):
    """URLs found by walking the resolver: a page added later with <id:…> (or a bounded
    converter) is held to the same rule; <int:…> would fail here on PostgreSQL or SQLite."""
    superuser = client_as(make_user("root", superuser=True))
    wrong = []
    for route in every_route():
        if "/1/" not in route.path or route.is_admin:
            continue
        for huge in (BIG, PAST_BIGINT):
            path = route.path.replace("/1/", f"/{huge}/", 1)
            for method in ("get", "post"):
                status = getattr(superuser, method)(path).status_code
                if status not in (404, 405):
                    wrong.append(f"{method.upper()} {path}: {status}")
    assert wrong == []


# --- manage.py ------------------------------------------------------------------------------------


def manage(*args: bytes | str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(),
        input=stdin,
        capture_output=True,
        timeout=120,
    )


NO_TEST = ("--url", "http://127.0.0.1:1", "--password-stdin", "--no-test")
COMMANDS = [
    (
        "a pool name not in UTF-8",
        ["pool_add", b"\xe9t\xe9", *NO_TEST],
        b"pw\n",
        "manage.py pool_add: argument 1: the value is not valid UTF-8 text",
    ),
    (
        "an address not in UTF-8",
        ["pool_add", "lab", "--url", b"http://\xff", "--password-stdin"],
        b"pw\n",
        "manage.py pool_add: --url: the value is not valid UTF-8 text",
    ),
    (
        "an address not in UTF-8, with =",
        ["pool_add", "lab", b"--url=http://\xff", "--password-stdin"],
        b"pw\n",
        "manage.py pool_add: --url: the value is not valid UTF-8 text",
    ),
    (
        "a password not in UTF-8",
        ["pool_add", "lab", *NO_TEST],
        b"\xe9t\xe9\n",
        "CommandError: --password-stdin: standard input is not valid UTF-8 text",
    ),
    (
        "a 3 MB password",
        ["pool_add", "lab", *NO_TEST],
        b"x" * (3 * MEGABYTE) + b"\n",
        "CommandError: pool not added: --password-stdin: Ensure this value has at most 1024",
    ),
    (
        "a huge pool id",
        ["task_list", "--pool", BIG],
        b"",
        f"CommandError: --pool: '{BIG}' is not an id",
    ),
    (
        "a huge limit",
        ["task_list", "--limit", str(10**30)],
        b"",
        f"CommandError: --limit={10**30} must be from 1 to 10000",
    ),
    (
        "a timeout that is not a number",
        ["check_workers", "--timeout", "nan"],
        b"",
        "CommandError: --timeout: give seconds from 0.1 to 3600, not nan",
    ),
    (
        "a name to remove not in UTF-8",
        ["pool_remove", b"\xff"],
        b"",
        "manage.py pool_remove: argument 1: the value is not valid UTF-8 text",
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [case[1:] for case in COMMANDS],
    ids=[case[0] for case in COMMANDS],
)
def test_bad_input_on_the_command_line_is_one_line_naming_the_option(args, stdin, says):
    done = manage(*args, stdin=stdin)
    errors = done.stderr.decode(errors="replace").strip().splitlines()
    assert done.returncode != 0
    assert errors == [says] or (len(errors) == 1 and errors[0].startswith(says)), errors
    assert not Pool.objects.exists()


# --- the simulator's command line ---------------------------------------------------------------

SIMULATOR = [
    (["--port", "99999"], "--port: 99999 is not between 0 and 65535"),
    (
        ["--port", "65535", "--hosts", "2"],
        "--port: 2 hosts listen on PORT to PORT+1, and 65536 is past 65535: give a lower --port",
    ),
    (["--port", "http"], "--port: 'http' is not a whole number"),
    (["--port", "0", "--hosts", "0"], "--hosts: 0 is not between 1 and 1000"),
    (["--port", "0", "--vms", "-1"], "--vms: -1 is not between 0 and 100000"),
    (["--port", "0", "--data", "{file}"], "--data: {file} exists and is not a directory"),
    (["--port", "0", "--data", "{file}/inside"], "--data: cannot create {file}/inside: Not a"),
]


@pytest.mark.parametrize(("args", "says"), SIMULATOR, ids=[" ".join(a) for a, _ in SIMULATOR])
def test_bad_input_on_the_simulator_command_line_is_one_line(tmp_path, args, says):
    a_file = tmp_path / "state.json"
    a_file.write_text("{}")
    args = [arg.format(file=a_file) for arg in args]
    if "--data" not in args:
        args += ["--data", str(tmp_path / "pool")]
    done = subprocess.run(
        [sys.executable, "-m", "xapisim", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("python -m xapisim: error: " + says.format(file=a_file)), line


def test_a_client_asking_for_json_gets_its_errors_as_json():
    answer = bad_request_response(
        RequestFactory().get("/", HTTP_ACCEPT="application/json"), "page: 'x' is not a page"
    )
    assert answer.status_code == 400 and answer.content == b'{"error": "page: \'x\' is not a page"}'
