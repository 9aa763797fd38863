"""Choices of the pools app: connection states and the XAPI enums the cache stores as columns."""

from __future__ import annotations

from django.db import models


class PoolStatus(models.TextChoices):
    """Where the watcher stands with a pool."""

    CONNECTING = "connecting", "Connecting"
    CONNECTED = "connected", "Connected"
    STALE = "stale", "Stale (connection lost, within the grace period)"
    DISCONNECTED = "disconnected", "Disconnected"
    ERROR = "error", "Error"
    DISABLED = "disabled", "Disabled"


class TlsMode(models.TextChoices):
    """How the master's HTTPS certificate is checked."""

    PIN = "pin", "Pin the certificate fingerprint (trust on first use)"
    CA = "ca", "Verify against the system certificate authorities"


class PowerState(models.TextChoices):
    """``VM.power_state`` as XAPI spells it."""

    HALTED = "Halted", "Halted"
    PAUSED = "Paused", "Paused"
    RUNNING = "Running", "Running"
    SUSPENDED = "Suspended", "Suspended"


class XapiTaskStatus(models.TextChoices):
    """``task.status`` as XAPI spells it."""

    PENDING = "pending", "Pending"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


class VbdType(models.TextChoices):
    """``VBD.type`` as XAPI spells it."""

    CD = "CD", "CD"
    DISK = "Disk", "Disk"
    FLOPPY = "Floppy", "Floppy"
