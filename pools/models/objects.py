"""The cached inventory of a pool: its hosts, storage repositories, VMs, disks and the block
devices linking them, each a row per XAPI object as the watcher last saw it."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from pools.choices import PowerState, VbdType
from pools.models.cached_object import (
    CachedObject,
    CachedObjectQuerySet,
    _cache_meta,
    _datetime,
    _int,
    _ref,
)


class Host(CachedObject):
    """One host (server) of a pool, as XAPI last described it."""

    xapi_class = "host"
    address = models.CharField(max_length=255, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    enabled = models.BooleanField(default=True)

    Meta = _cache_meta("host")

    def get_absolute_url(self) -> str:
        """The VMs running on this host."""
        return f"{reverse('pools:vm_list')}?host={self.pk}"

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "address": record.get("address", ""),
            "hostname": record.get("hostname", ""),
            "enabled": bool(record.get("enabled", True)),
        }


class SR(CachedObject):
    """One storage repository of a pool."""

    xapi_class = "SR"
    type = models.CharField(max_length=32, blank=True)
    content_type = models.CharField(max_length=32, blank=True)
    shared = models.BooleanField(default=False)
    physical_size = models.BigIntegerField(default=0)
    physical_utilisation = models.BigIntegerField(default=0)

    Meta = _cache_meta("sr", verbose_name="SR")

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "type": record.get("type", ""),
            "content_type": record.get("content_type", ""),
            "shared": bool(record.get("shared", False)),
            "physical_size": _int(record.get("physical_size")),
            "physical_utilisation": _int(record.get("physical_utilisation")),
        }


class VMQuerySet(CachedObjectQuerySet):
    def guests(self) -> VMQuerySet:
        """Real guest VMs: neither snapshots, templates nor the control domain."""
        return self.filter(is_a_snapshot=False, is_a_template=False, is_control_domain=False)

    def snapshots(self) -> VMQuerySet:
        return self.filter(is_a_snapshot=True)


class VM(CachedObject):
    """One VM record of a pool: a guest, a snapshot, a template or a control domain (flagged)."""

    xapi_class = "VM"
    name_description = models.TextField(blank=True)
    power_state = models.CharField(max_length=16, choices=PowerState.choices, blank=True)
    is_a_template = models.BooleanField(default=False)
    is_a_snapshot = models.BooleanField(default=False)
    is_control_domain = models.BooleanField(default=False)
    snapshot_of_ref = models.CharField(max_length=64, blank=True)
    snapshot_time = models.DateTimeField(null=True, blank=True)
    resident_on_ref = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list)

    objects = VMQuerySet.as_manager()

    Meta = _cache_meta(
        "vm",
        verbose_name="VM",
        extra_indexes=(
            # The VM list: guests of a pool sorted by name (the default sort).
            models.Index(
                fields=["is_a_snapshot", "is_a_template", "is_control_domain", "name_label"],
                name="pools_vm_kind_name",
            ),
            # The snapshots of a VM (backups looking for their base snapshot).
            models.Index(fields=["pool", "snapshot_of_ref"], name="pools_vm_snapshot_of"),
        ),
    )

    def get_absolute_url(self) -> str:
        """The VM list, showing this VM (found by its uuid)."""
        return f"{reverse('pools:vm_list')}?kind=all&q={self.uuid}"

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "name_description": record.get("name_description", ""),
            "power_state": record.get("power_state", ""),
            "is_a_template": bool(record.get("is_a_template", False)),
            "is_a_snapshot": bool(record.get("is_a_snapshot", False)),
            "is_control_domain": bool(record.get("is_control_domain", False)),
            "snapshot_of_ref": _ref(record, "snapshot_of"),
            "snapshot_time": _datetime(record.get("snapshot_time")),
            "resident_on_ref": _ref(record, "resident_on"),
            "tags": list(record.get("tags", [])),
        }


class VDI(CachedObject):
    """One virtual disk image of a pool."""

    xapi_class = "VDI"
    sr_ref = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=32, blank=True)
    virtual_size = models.BigIntegerField(default=0)
    physical_utilisation = models.BigIntegerField(default=0)
    is_a_snapshot = models.BooleanField(default=False)
    snapshot_of_ref = models.CharField(max_length=64, blank=True)
    managed = models.BooleanField(default=True)
    missing = models.BooleanField(default=False)

    # The disks of one page of the VM list are read by (pool, ref): the unique constraint's index.
    Meta = _cache_meta("vdi", verbose_name="VDI")

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "sr_ref": _ref(record, "SR"),
            "type": record.get("type", ""),
            "virtual_size": _int(record.get("virtual_size")),
            "physical_utilisation": _int(record.get("physical_utilisation")),
            "is_a_snapshot": bool(record.get("is_a_snapshot", False)),
            "snapshot_of_ref": _ref(record, "snapshot_of"),
            "managed": bool(record.get("managed", True)),
            "missing": bool(record.get("missing", False)),
        }


class VBD(CachedObject):
    """One virtual block device: the link between a VM and a VDI (or an empty CD drive)."""

    xapi_class = "VBD"
    vm_ref = models.CharField(max_length=64, blank=True)
    vdi_ref = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=8, choices=VbdType.choices, blank=True)
    userdevice = models.CharField(max_length=16, blank=True)
    currently_attached = models.BooleanField(default=False)

    Meta = _cache_meta(
        "vbd",
        verbose_name="VBD",
        extra_indexes=(
            # The disks of the VMs on one page of the VM list: VBD where pool and vm_ref in (...).
            models.Index(fields=["pool", "vm_ref"], name="pools_vbd_pool_vm"),
        ),
    )

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            "uuid": record.get("uuid", ""),
            "name_label": record.get("device", "") or record.get("userdevice", ""),
            "vm_ref": record.get("VM", ""),
            "vdi_ref": _ref(record, "VDI"),
            "type": record.get("type", ""),
            "userdevice": str(record.get("userdevice", ""))[:16],
            "currently_attached": bool(record.get("currently_attached", False)),
        }
