"""Strict JSON parsing and the canonical form that fingerprints are computed over."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, NoReturn

from ._exceptions import InvalidJSONError

# Floats with an integral value are written as integers (JSON Schema treats 1 and
# 1.0 alike), but only where the integer is exact.
_MAX_EXACT_FLOAT_INT = 2**53


def _reject_constant(name: str) -> NoReturn:
    raise InvalidJSONError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidJSONError(f"number {text} is out of range")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidJSONError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


def strict_decoder(
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] = _unique_keys,
) -> json.JSONDecoder:
    """A decoder refusing NaN and Infinity whose objects are built by `object_pairs_hook`;
    a hook of one's own must refuse duplicate keys too, with InvalidJSONError."""
    return json.JSONDecoder(
        object_pairs_hook=object_pairs_hook,
        parse_constant=_reject_constant,
        parse_float=_finite_float,
    )


# Built once: json.loads with hooks would build a new decoder on every call.
_STRICT_DECODER = strict_decoder()


def loads_strict(data: bytes | str, *, decoder: json.JSONDecoder = _STRICT_DECODER) -> Any:
    """Parse one UTF-8 JSON document, refusing duplicate keys, NaN and Infinity.

    `decoder` (from `strict_decoder`) may watch every object; what its hook raises,
    other than InvalidJSONError or ValueError, propagates as is.
    """
    try:
        # RFC 8259 JSON is UTF-8; json.loads would guess UTF-16/32 from the first bytes.
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return decoder.decode(text)
    except InvalidJSONError:
        raise
    except UnicodeDecodeError as exc:
        raise InvalidJSONError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InvalidJSONError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InvalidJSONError("invalid JSON: nested too deeply") from None


def canonical_json(document: Any, *, ordered: frozenset[tuple[str, ...]] = frozenset()) -> bytes:
    """Serialise `document` without insignificant whitespace, keys sorted by code point.

    Objects at the paths in `ordered` keep their key order: a contract's
    `params.properties` order is its positional signature, so it is content.
    """
    try:
        normal = _normalise(document, (), ordered)
        # One dumps call for the whole document: json's C encoder does the writing, and
        # `_normalise` has already put every object's keys in their canonical order.
        text = json.dumps(normal, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJSONError(
            f"string holds a lone surrogate ({exc.object[exc.start : exc.end]!r}), "
            "which is not Unicode text"
        ) from None
    except ValueError as exc:  # NaN or Infinity given as Python floats
        raise InvalidJSONError(f"not JSON: {exc}") from None


def _normalise(value: Any, path: tuple[str, ...], ordered: frozenset[tuple[str, ...]]) -> Any:
    """`value` with object keys sorted (but at `ordered` paths) and integral floats as ints."""
    if isinstance(value, dict):
        keys = value if path in ordered else sorted(value)
        return {key: _normalise(value[key], (*path, key), ordered) for key in keys}
    if isinstance(value, list | tuple):
        inside = (*path, "*")
        return [_normalise(item, inside, ordered) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_FLOAT_INT:
        return int(value)
    return value


def fingerprint(canonical: bytes) -> str:
    """The sha-256 of canonical bytes, as lowercase hex."""
    return hashlib.sha256(canonical).hexdigest()
