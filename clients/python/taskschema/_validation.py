"""JSON Schema validation with every error reported as a `Violation` at a JSON pointer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from ._exceptions import Violation

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER


def json_pointer(parts: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a sequence of keys and indexes."""
    return "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts
    )


def compile_schema(schema: Any) -> Validator:
    """A 2020-12 validator that asserts formats (`date-time`, `uuid`, `email`, ...)."""
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def violations(
    validator: Validator, instance: Any, *, prefix: Sequence[str | int] = ()
) -> list[Violation]:
    """Every error of `instance`, ordered by path, each with its JSON pointer."""
    found = [
        Violation(path=json_pointer([*prefix, *error.absolute_path]), message=_message(error))
        for error in _leaf_errors(validator.iter_errors(instance))
    ]
    return sorted(set(found), key=lambda v: (v.path, v.message))


def _leaf_errors(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    # An anyOf/oneOf failure alone says little; its best-matching branch says why.
    for error in errors:
        if error.context and error.validator in ("anyOf", "oneOf"):
            yield best_match(error.context) or error  # type: ignore[misc]
        else:
            yield error


def _message(error: ValidationError) -> str:
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."
