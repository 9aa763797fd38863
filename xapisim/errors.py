"""XAPI failures: an error code plus string parameters (datamodel_errors.ml, docs/xapi.md §6)."""

from __future__ import annotations


class XapiError(Exception):
    """A XAPI `Failure`: goes out as `Status: Failure` with `ErrorDescription` = [code, *params]."""

    def __init__(self, code: str, *params: object) -> None:
        self.details = [code, *(str(param) for param in params)]
        super().__init__(", ".join(self.details))

    @property
    def code(self) -> str:
        return self.details[0]


class ConnectionDropped(Exception):
    """The simulator cut this client's connection on purpose (event stream drop, failover)."""


def handle_invalid(cls: str, ref: object) -> XapiError:
    return XapiError("HANDLE_INVALID", cls, ref)


def bad_power_state(vm: str, expected: str, actual: str) -> XapiError:
    return XapiError("VM_BAD_POWER_STATE", vm, expected.lower(), actual.lower())


VDI_IO_ERROR = ("VDI_IO_ERROR", "Device I/O errors")
