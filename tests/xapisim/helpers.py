"""Small HTTP and task helpers shared by the xapisim tests (real sockets, no mocks)."""

from __future__ import annotations

import hashlib
import http.client
import ssl
import time
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

import XenAPI


def connection(url: str, timeout: float = 30) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl._create_unverified_context()
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request; the whole body is read (until close when there is no Content-Length)."""
    conn = connection(url)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def post_xml(url: str, body: str, path: str = "/") -> tuple[int, http.client.HTTPMessage, bytes]:
    return request(url, "POST", path, body.encode(), {"Content-Type": "text/xml"})


def call_xml(method: str, *params: Any) -> str:
    return xmlrpc.client.dumps(tuple(params), method)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_task(session: XenAPI.Session, task: str, timeout: float = 30) -> dict[str, Any]:
    """Poll until the task leaves pending/cancelling; returns its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = session.xenapi.task.get_record(task)
        if record["status"] not in ("pending", "cancelling"):
            return record
        time.sleep(0.02)
    raise AssertionError(f"task {task} still pending after {timeout}s")


def task_value(record: dict[str, Any]) -> Any:
    """Parse `task.result` the way docs/xapi.md §8.7 says."""
    return xmlrpc.client.loads(
        f"<methodResponse><params><param>{record['result']}</param></params></methodResponse>"
    )[0][0]


def vm_by_name(session: XenAPI.Session, name: str) -> str:
    (ref,) = session.xenapi.VM.get_by_name_label(name)
    return ref


def disk_vdis(session: XenAPI.Session, vm: str) -> list[str]:
    """The VM's Disk VDIs in userdevice order."""
    vbds = [session.xenapi.VBD.get_record(vbd) for vbd in session.xenapi.VM.get_VBDs(vm)]
    disks = sorted((int(r["userdevice"]), r["VDI"]) for r in vbds if r["type"] == "Disk")
    return [vdi for _, vdi in disks]


def export(
    url: str, session: str, vdi: str, fmt: str = "raw", base: str | None = None, extra: str = ""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    path = f"/export_raw_vdi?session_id={session}&vdi={vdi}&format={fmt}"
    if base:
        path += f"&base={base}"
    return request(url, "GET", path + extra)


def vm_create_record(**fields: Any) -> dict[str, Any]:
    """A `VM.create` record with every field the datamodel gives no default
    (docs/xapi.md §8.9), ints as strings."""
    memory = str(1024**3)
    return {
        "name_label": "restored",
        "user_version": "1",
        "is_a_template": False,
        "affinity": "OpaqueRef:NULL",
        "memory_static_max": memory,
        "memory_dynamic_max": memory,
        "memory_dynamic_min": memory,
        "memory_static_min": str(512 * 1024**2),
        "VCPUs_params": {},
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cdn"},
        "platform": {},
        "PCI_bus": "",
        "other_config": {},
        "recommendations": "",
        **fields,
    }
