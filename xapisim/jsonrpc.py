"""JSON-RPC 2.0 at `/jsonrpc` (and `/json`), as XAPI serves it since 7.3 (docs/xapi.md §1, §11).

Same call path as XML-RPC; results are plain JSON (ints as numbers, datetimes as their XAPI text),
failures are `error: {code, message: <XAPI code>, data: [params]}`, which XO's client unwraps.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from .errors import XapiError
from .wire import CachedRecord


def _default(value: Any) -> Any:
    if isinstance(value, CachedRecord):
        return value.record
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=_default, separators=(",", ":")).encode()


def handle(body: bytes, call: Callable[[str, list[Any]], Any]) -> bytes:
    """Answer one JSON-RPC request; `call(method, params)` raises XapiError on failure.

    Raises ValueError when the body is not a JSON-RPC request (the server answers 500)."""
    request = json.loads(body)
    if not isinstance(request, dict) or "method" not in request:
        raise ValueError("not a JSON-RPC request")
    request_id = request.get("id")
    params = request.get("params") or []
    if not isinstance(params, list):
        params = [params]
    try:
        result = call(str(request["method"]), params)
    except XapiError as error:
        code, *data = error.details
        return encode(
            {
                "jsonrpc": "2.0",
                "error": {"code": 1, "message": code, "data": data},
                "id": request_id,
            }
        )
    return encode({"jsonrpc": "2.0", "result": result, "id": request_id})
