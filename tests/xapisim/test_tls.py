"""`--tls`: HTTPS with a self-signed certificate kept in DIR (XAPI's default set-up)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, export, sha256_hex, vm_by_name


def test_tls_rpc_and_export(xapisim_factory) -> None:
    sim = xapisim_factory(vms=2, tls=True)
    assert sim.ready_line.startswith(f"xapisim ready at https://127.0.0.1:{sim.port}/")
    with pytest.raises(ssl.SSLCertVerificationError):
        XenAPI.Session(sim.url).login_with_password("root", "xapisim")
    session = sim.session()  # ignore_ssl=True, like a client pinning the certificate
    vdi = disk_vdis(session, vm_by_name(session, "vm-00000"))[0]
    status, headers, body = export(sim.url, session.handle, vdi, "raw")
    assert status == 200 and headers["content-length"] is None
    assert sha256_hex(body) == sim.sim("vdi_sha256", vdi)
    certificate = ssl.get_server_certificate(("127.0.0.1", sim.port))
    assert (sim.data_dir / "tls" / "cert.pem").read_text().strip() == certificate.strip()
    sim.stop()
    sim.start()
    assert ssl.get_server_certificate(("127.0.0.1", sim.port)).strip() == certificate.strip()
    with pytest.raises((urllib.error.URLError, ConnectionResetError)):
        urllib.request.urlopen(f"http://127.0.0.1:{sim.port}/", timeout=5)
