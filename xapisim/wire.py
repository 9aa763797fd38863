"""XML-RPC codec written the way XAPI writes it (docs/xapi.md §1-§4).

XAPI (ocaml-rpc, non-strict mode) emits compact XML with no whitespace between elements, untyped
strings and 64-bit ints, `<double>` as `%.16g`, `<i4>` only in `valid_ref_counts`. XO's JavaScript
client crashes on whitespace, so we never use `xmlrpc.client.dumps` for responses. Requests are
parsed leniently, because Python's client sends `<string>` tags and newlines.
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from typing import Any


class DateTime(str):
    """A XAPI datetime on the wire: `YYYYMMDDTHH:MM:SSZ` (no hyphens)."""


class I4(int):
    """An int32 that must go out as `<i4>` (only `event.from`'s `valid_ref_counts` uses it)."""


class CachedRecord:
    """A record whose XML encoding is cached, so `get_all_records` of 10,000 VMs is a join."""

    __slots__ = ("record", "xml")

    def __init__(self, record: dict[str, Any], xml: str) -> None:
        self.record = record
        self.xml = xml


class RequestParseError(ValueError):
    """The request body is not XML-RPC: XAPI answers HTTP 500 (wire-protocol.md)."""


EPOCH = DateTime("19700101T00:00:00Z")


def datetime_of(seconds: float) -> DateTime:
    """XAPI's datetime text for a unix time."""
    return DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(seconds)))


def now() -> DateTime:
    return datetime_of(time.time())


# Escape what ocaml-rpc escapes and drop control characters XML 1.0 cannot carry.
_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;"}
_ESCAPES.update({c: None for c in range(0x20) if c not in (9, 10, 13)})
_NEEDS_ESCAPE = frozenset('&<>"') | frozenset(chr(c) for c in range(0x20) if c not in (9, 10, 13))


def escape(text: str) -> str:
    if _NEEDS_ESCAPE.isdisjoint(text):
        return text
    return text.translate(_ESCAPES)


def encode_value(value: Any, out: list[str]) -> None:
    """Append the `<value>` encoding of a Python value to `out` (a list joined once at the end)."""
    kind = type(value)
    if kind is str:
        out.append("<value>")
        out.append(escape(value))
        out.append("</value>")
    elif kind is CachedRecord:
        out.append(value.xml)
    elif kind is dict:
        out.append("<value><struct>")
        for key, item in value.items():
            out.append("<member><name>")
            out.append(escape(str(key)))
            out.append("</name>")
            encode_value(item, out)
            out.append("</member>")
        out.append("</struct></value>")
    elif kind is list or kind is tuple or kind is set or kind is frozenset:
        out.append("<value><array><data>")
        for item in value:
            encode_value(item, out)
        out.append("</data></array></value>")
    elif kind is bool:
        out.append(
            "<value><boolean>1</boolean></value>"
            if value
            else "<value><boolean>0</boolean></value>"
        )
    elif kind is int:
        out.append(f"<value>{value}</value>")
    elif kind is I4:
        out.append(f"<value><i4>{int(value)}</i4></value>")
    elif kind is float:
        out.append(f"<value><double>{value:.16g}</double></value>")
    elif kind is DateTime:
        out.append(f"<value><dateTime.iso8601>{value}</dateTime.iso8601></value>")
    elif kind is bytes:
        out.append(f"<value><base64>{base64.b64encode(value).decode()}</base64></value>")
    elif value is None:
        out.append("<value></value>")
    else:
        raise TypeError(f"cannot encode {kind.__name__} as XML-RPC")


def encode_record(record: dict[str, Any]) -> str:
    out: list[str] = []
    encode_value(record, out)
    return "".join(out)


def value_fragment(value: Any) -> str:
    """`<value>…</value>` alone: what a task's `result` field holds (docs/xapi.md §8.7)."""
    out: list[str] = []
    encode_value(value, out)
    return "".join(out)


_HEAD = '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
_TAIL = "</struct></value></param></params></methodResponse>"


def success_response(value: Any) -> bytes:
    out = [
        _HEAD,
        "<member><name>Status</name><value>Success</value></member><member><name>Value</name>",
    ]
    encode_value(value, out)
    out.append("</member>")
    out.append(_TAIL)
    return "".join(out).encode()


def failure_response(details: list[str]) -> bytes:
    out = [_HEAD, "<member><name>Status</name><value>Failure</value></member>"]
    out.append("<member><name>ErrorDescription</name>")
    encode_value([str(item) for item in details], out)
    out.append("</member>")
    out.append(_TAIL)
    return "".join(out).encode()


def bare_response(value: Any) -> bytes:
    """A response without the Status/Value envelope (only `system.listMethods`, docs/xapi.md §3)."""
    out = ['<?xml version="1.0"?><methodResponse><params><param>']
    encode_value(value, out)
    out.append("</param></params></methodResponse>")
    return "".join(out).encode()


def _decode(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    node = children[0]
    tag = node.tag
    text = node.text or ""
    if tag == "string":
        return text
    if tag in ("int", "i4", "i8"):
        return int(text.strip())
    if tag == "boolean":
        return text.strip() in ("1", "true")
    if tag == "double":
        return float(text.strip())
    if tag == "dateTime.iso8601":
        return DateTime(text.strip())
    if tag == "base64":
        return base64.b64decode(text)
    if tag == "nil":
        return None
    if tag == "array":
        data = node.find("data")
        return [] if data is None else [_decode(item) for item in data.findall("value")]
    if tag == "struct":
        result: dict[str, Any] = {}
        for member in node.findall("member"):
            name = member.findtext("name") or ""
            value = member.find("value")
            result[name] = "" if value is None else _decode(value)
        return result
    raise RequestParseError(f"unknown XML-RPC type <{tag}>")


def parse_call(body: bytes) -> tuple[str, list[Any]]:
    """Parse a `methodCall` body into (method name, params)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise RequestParseError(str(error)) from error
    if root.tag != "methodCall":
        raise RequestParseError(f"expected <methodCall>, got <{root.tag}>")
    name = (root.findtext("methodName") or "").strip()
    if not name:
        raise RequestParseError("missing <methodName>")
    params = root.find("params")
    values: list[Any] = []
    if params is not None:
        for param in params.findall("param"):
            value = param.find("value")
            values.append("" if value is None else _decode(value))
    return name, values


def parse_value_fragment(fragment: str) -> Any:
    """Decode a `<value>…</value>` fragment (task results)."""
    return _decode(ET.fromstring(fragment))
