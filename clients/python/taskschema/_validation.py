"""JSON Schema validation with every error reported as a `Violation` at a JSON pointer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from ._exceptions import Violation

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER


def json_pointer(parts: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a sequence of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def compile_schema(schema: Any) -> Validator:
    """A 2020-12 validator that asserts formats (`date-time`, `uuid`, `email`, ...)."""
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


class CompiledSchema:
    """A schema compiled for the hot path.

    jsonschema-rs answers "valid?" in microseconds; python-jsonschema, the reference,
    explains failures and has the last word, so a document is refused only when the
    reference refuses it.
    """

    def __init__(self, schema: Any) -> None:
        self.reference = compile_schema(schema)
        try:
            self._fast: Any = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        except Exception:  # a schema jsonschema-rs cannot compile: the reference alone
            self._fast = None

    def fast_is_valid(self, instance: Any) -> bool:
        """jsonschema-rs's answer alone (the reference's when it could not compile)."""
        if self._fast is None:
            return bool(self.reference.is_valid(instance))
        return bool(self._fast.is_valid(instance))

    def violations(self, instance: Any) -> list[Violation]:
        """Every error of `instance`, each at its JSON pointer; empty when valid."""
        if self._fast is not None and self._fast.is_valid(instance):
            return []
        return violations(self.reference, instance)


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
    # An anyOf/oneOf failure alone says little: the branch the instance came closest
    # to matching says why, unless every branch is plainly a different shape.
    for error in errors:
        branch = _closest_branch(error) if error.validator in ("anyOf", "oneOf") else None
        if branch:
            yield from _leaf_errors(branch)
        else:
            yield error


def _closest_branch(error: ValidationError) -> list[ValidationError] | None:
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context or ():
        branches[sub.relative_schema_path[0]].append(sub)
    candidates = [errors for errors in branches.values() if not _rules_out(errors)]
    if not candidates:
        return None
    # Deeper errors mean more of the instance matched; fewer errors mean a closer fit.
    return min(
        candidates, key=lambda errors: (-max(len(e.relative_path) for e in errors), len(errors))
    )


def _rules_out(errors: list[ValidationError]) -> bool:
    """A branch is not what was meant when the type differs, or a tag (`const`) does."""
    return any(
        (error.validator == "type" and not error.relative_path)
        or (error.validator == "const" and len(error.relative_path) <= 1)
        for error in errors
    )


def _message(error: ValidationError) -> str:
    message: str = error.message
    return message if len(message) <= 300 else message[:297] + "..."
