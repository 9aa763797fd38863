"""session.*: login, logout, and the session limits of xapi_globs.ml (docs/xapi.md §2.1)."""

from __future__ import annotations

from .. import schema
from ..errors import XapiError
from ..wire import now
from .registry import Call, api

MAX_PER_ORIGINATOR = 500
MAX_ANONYMOUS = 400


@api("session.login_with_password", session=False, defaulted=True)
def login_with_password(
    call: Call, uname: str, pwd: str, version: str = "", originator: str = ""
) -> str:
    """Check the credentials on the coordinator; members answer HOST_IS_SLAVE before this."""
    sim = call.sim
    if uname != "root" or pwd != sim.password:
        raise XapiError("SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure")
    record = schema.new_record(
        "session",
        this_host=call.host,
        last_active=now(),
        validation_time=now(),
        auth_user_name=uname,
        originator=str(originator),
    )
    with call.db.lock:
        _enforce_limits(call, str(originator))
        return call.db.create("session", record)


def _enforce_limits(call: Call, originator: str) -> None:
    """Destroy the oldest sessions beyond XAPI's limits, as XAPI does."""
    sessions = call.db.tables["session"]
    same = [ref for ref, r in sessions.items() if r["originator"] == originator]
    limit = MAX_PER_ORIGINATOR if originator else MAX_ANONYMOUS
    # dicts keep insertion order, so the first ones are the oldest.
    for ref in same[: max(0, len(same) - limit + 1)]:
        call.db.delete("session", ref)


@api("session.logout")
def logout(call: Call) -> None:
    with call.db.lock:
        if call.session in call.db.tables["session"]:
            call.db.delete("session", call.session)


@api("session.local_logout")
def local_logout(call: Call) -> None:
    logout(call)


@api("session.get_all_subject_identifiers")
def get_all_subject_identifiers(call: Call) -> list[str]:
    return []
