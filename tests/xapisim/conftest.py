"""Fixtures shared by the xapisim tests on top of the `xapisim` process of tests/fixtures."""

from __future__ import annotations

import pytest

from tests.xapisim.helpers import disk_vdis, vm_by_name


@pytest.fixture
def pool(xapisim):
    """(simulator, session, VM, disk) for vm-00002: halted, one 64 MiB disk with seeded content,
    the disk the export and import tests move bytes through."""
    session = xapisim.session()
    vm = vm_by_name(session, "vm-00002")
    vdi = disk_vdis(session, vm)[0]
    return xapisim, session, vm, vdi
