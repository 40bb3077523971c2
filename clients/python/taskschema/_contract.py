"""The task contract: one JSON document declaring a Celery task's params, return and options."""

from __future__ import annotations

import copy
import json
import keyword
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from ._exceptions import CallValidationError, ContractError, Violation
from ._json import canonical_json, fingerprint, loads_strict
from ._validation import CompiledSchema, compile_schema, json_pointer, violations

_ORDERED_PATHS: Final = frozenset({("params", "properties")})
_LOCAL_DEFS_PREFIX: Final = "#/$defs/"
_IDENTITY_KEYWORDS: Final = frozenset({"$ref", "$id", "$anchor", "$dynamicAnchor", "$dynamicRef"})
# Keywords mapping names to subschemas, and keywords whose values are data, not subschemas
# (a "$ref" key inside `default` is not a reference).
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_PATTERN_KEYWORDS: Final = frozenset({"pattern"})
_DATA_KEYWORDS: Final = frozenset({"const", "enum", "default", "examples", "required"})


class TaskOptions(BaseModel):
    """Celery options from a contract's `options` block; unset fields are None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    max_retries: int | None = None
    default_retry_delay: float | None = None
    acks_late: bool | None = None
    reject_on_worker_lost: bool | None = None
    expires: float | None = None
    rate_limit: str | None = None


@lru_cache(maxsize=1)
def meta_schema() -> dict[str, Any]:
    """The meta-schema every contract must pass (`schemas/task-contract.schema.json`)."""
    text = resources.files(__package__).joinpath("task-contract.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _meta_validator() -> CompiledSchema:
    # The fast path matters: codegen and registries load hundreds of contracts at once.
    return CompiledSchema(meta_schema())


class TaskContract:
    """A validated task contract. Immutable; equal when fingerprints are equal."""

    __slots__ = ("__dict__", "_canonical", "_document", "fingerprint", "options")

    def __init__(self, document: Mapping[str, Any]) -> None:
        """Validate `document` against the meta-schema and the contract rules.

        Raises `ContractError` listing every problem with its JSON path.
        """
        problems = check_document(document)
        if problems:
            name = document.get("task") if isinstance(document, Mapping) else None
            label = f"contract for {name!r}" if isinstance(name, str) else "contract"
            raise ContractError(f"{label} is invalid", problems)
        self._canonical = canonical_json(document, ordered=_ORDERED_PATHS)
        # Re-parse the canonical form so the held document has no aliasing with the caller's.
        self._document: dict[str, Any] = json.loads(self._canonical)
        self.fingerprint: str = fingerprint(self._canonical)
        self.options = TaskOptions.model_validate(self._document.get("options", {}))

    @classmethod
    def from_json(cls, data: bytes | str) -> TaskContract:
        """Parse strict JSON and validate it as a contract."""
        document = loads_strict(data)
        if not isinstance(document, dict):
            raise ContractError(
                "contract is invalid", [Violation(path="", message="a contract is a JSON object")]
            )
        return cls(document)

    # -- the document ----------------------------------------------------------

    @property
    def task(self) -> str:
        name: str = self._document["task"]
        return name

    @property
    def description(self) -> str:
        text: str = self._document.get("description", "")
        return text

    @property
    def params(self) -> dict[str, Any]:
        schema: dict[str, Any] = self._document["params"]
        return schema

    @property
    def returns(self) -> Any:
        return self._document["returns"]

    @property
    def defs(self) -> dict[str, Any]:
        defs: dict[str, Any] = self._document.get("$defs", {})
        return defs

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in positional order."""
        return tuple(self.params["properties"])

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.params.get("required", ()))

    def to_dict(self) -> dict[str, Any]:
        """A fresh copy of the contract document."""
        document: dict[str, Any] = json.loads(self._canonical)
        return document

    def canonical_json(self) -> bytes:
        """The canonical bytes the fingerprint is the sha-256 of."""
        return self._canonical

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskContract) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"<TaskContract {self.task} {self.fingerprint[:12]}>"

    # -- calls -----------------------------------------------------------------

    def bind(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Map a Celery call's positional and keyword arguments onto one params object.

        Positional arguments take parameter names in declaration order. Raises
        `CallValidationError` for surplus positional arguments or a parameter given twice.
        """
        kwargs = kwargs or {}
        names = self.parameters
        problems: list[Violation] = []
        if len(args) > len(names):
            problems.append(
                Violation(
                    path="",
                    message=f"{self.task} takes {len(names)} positional argument(s) "
                    f"but {len(args)} were given",
                )
            )
        call = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in call:
                problems.append(
                    Violation(
                        path=json_pointer([name]),
                        message=f"got multiple values for argument {name!r}",
                    )
                )
            else:
                call[name] = value
        if problems:
            raise CallValidationError(
                f"arguments of {self.task} do not fit its signature", problems
            )
        return call

    def with_defaults(self, call: Mapping[str, Any]) -> dict[str, Any]:
        """`call` with every omitted parameter that declares a `default` set to (a copy
        of) it: the call the task runs with, and the one that is validated."""
        filled = dict(call)
        for name, default in self._defaults.items():
            if name not in filled:
                filled[name] = copy.deepcopy(default)
        return filled

    @cached_property
    def _defaults(self) -> dict[str, Any]:
        return {
            name: schema["default"]
            for name, schema in self.params["properties"].items()
            if isinstance(schema, dict) and "default" in schema
        }

    def params_violations(self, call: Mapping[str, Any]) -> list[Violation]:
        """Every way `call` (a bound params object) breaks `params`; empty when valid."""
        return self._params_schema.violations(call)

    def returns_violations(self, value: Any) -> list[Violation]:
        """Every way a return value breaks `returns`; empty when valid."""
        return self._returns_schema.violations(value)

    def validate_params(self, call: Mapping[str, Any]) -> None:
        """Raise `CallValidationError` unless `call` is valid under `params`."""
        problems = self.params_violations(call)
        if problems:
            raise CallValidationError(f"arguments of {self.task} break its contract", problems)

    def validate_returns(self, value: Any) -> None:
        """Raise `CallValidationError` unless `value` is valid under `returns`."""
        problems = self.returns_violations(value)
        if problems:
            raise CallValidationError(f"return value of {self.task} breaks its contract", problems)

    def compile(self) -> None:
        """Build the `params` and `returns` validators now instead of on first use."""
        _ = self._params_schema, self._returns_schema

    @cached_property
    def _params_schema(self) -> CompiledSchema:
        return CompiledSchema(bundle(self._document, "params"))

    @cached_property
    def _returns_schema(self) -> CompiledSchema:
        return CompiledSchema(bundle(self._document, "returns"))


def bundle(document: Mapping[str, Any], part: str) -> Any:
    """`params` or `returns` as a standalone schema, with the contract's `$defs` at its root."""
    schema = document[part]
    defs = document.get("$defs")
    if not defs or isinstance(schema, bool):
        return schema
    return {**schema, "$defs": defs}


def check_document(document: Any) -> list[Violation]:
    """Every problem with a would-be contract document; empty when it is a valid contract."""
    problems = _meta_validator().violations(document)
    if problems:
        # The rules below assume the document's shape; report the shape first.
        return problems
    problems.extend(_check_parameters(document))
    problems.extend(_check_references(document))
    problems.extend(_check_patterns(document))
    if not problems:
        problems.extend(_check_defaults(document))
    problems.extend(_check_options(document.get("options", {})))
    return sorted(problems, key=lambda v: v.path)


def _check_parameters(document: Mapping[str, Any]) -> Iterator[Violation]:
    for part in ("params", "returns"):
        schema = document[part]
        for nested in ("$defs", "definitions"):
            if isinstance(schema, dict) and nested in schema:
                yield Violation(
                    path=json_pointer([part, nested]),
                    message=f"{part} holds its own {nested}: move the definitions to the "
                    "contract's top-level $defs, shared by params and returns",
                )
    params = document["params"]
    properties = params["properties"]
    for name in properties:
        if keyword.iskeyword(name):
            yield Violation(
                path=json_pointer(["params", "properties", name]),
                message=f"parameter name {name!r} is a Python keyword",
            )
    for index, name in enumerate(params.get("required", [])):
        if name not in properties:
            yield Violation(
                path=json_pointer(["params", "required", index]),
                message=f"required parameter {name!r} is not declared in params.properties",
            )


def _check_references(document: Mapping[str, Any]) -> Iterator[Violation]:
    defs = document.get("$defs", {})
    roots: list[tuple[str, Any]] = [
        ("params", document["params"]),
        ("returns", document["returns"]),
    ]
    roots.extend((f"$defs/{name}", schema) for name, schema in defs.items())
    for root, schema in roots:
        for path, keyword_name, value in _walk_schema(schema, root.split("/")):
            pointer = json_pointer([*path, keyword_name])
            if keyword_name != "$ref":
                yield Violation(
                    path=pointer,
                    message=f"{keyword_name} is not supported inside a contract; "
                    "reference shared schemas through #/$defs",
                )
                continue
            if value.lower().startswith(("http://", "https://")):
                yield Violation(
                    path=pointer,
                    message=f"remote reference {value!r} is refused: remote $refs are never "
                    "fetched; copy the schema into #/$defs",
                )
            elif value.startswith("/") and not value.startswith("//"):
                # The registry bundles these on publish; a loaded contract never holds one.
                yield Violation(
                    path=pointer,
                    message=f"registry reference {value!r} is not bundled: the registry "
                    "resolves it on publish (or `taskschema check --registry URL`); a "
                    "contract as loaded holds only local '#/$defs/...' references",
                )
            elif not value.startswith(_LOCAL_DEFS_PREFIX):
                yield Violation(
                    path=pointer,
                    message=f"unsupported reference {value!r}: only local '#/$defs/...' "
                    "references are allowed",
                )
            elif not _resolves(defs, value.removeprefix("#")):
                yield Violation(
                    path=pointer,
                    message=f"reference {value!r} does not resolve to a schema in this contract",
                )


def _walk_schema(
    schema: Any, path: Sequence[str | int], keywords: frozenset[str] = _IDENTITY_KEYWORDS
) -> Iterator[tuple[Sequence[str | int], str, str]]:
    """Yield (path, keyword, value) for each of `keywords` with a string value in a
    schema; the names of `patternProperties` count as `pattern`s."""
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key in keywords and isinstance(value, str):
            yield path, key, value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, subschema in value.items():
                if key == "patternProperties" and "pattern" in keywords:
                    yield [*path, key], name, name
                yield from _walk_schema(subschema, [*path, key, name], keywords)
        elif key in _DATA_KEYWORDS:
            continue
        elif isinstance(value, dict):
            yield from _walk_schema(value, [*path, key], keywords)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from _walk_schema(item, [*path, key, index], keywords)


def _check_patterns(document: Mapping[str, Any]) -> Iterator[Violation]:
    # The reference validator matches with Python's `re`; a pattern it cannot compile
    # would make every later validation fail, whatever the fast path thinks of it.
    roots = [("params", document["params"]), ("returns", document["returns"])]
    roots.extend((f"$defs/{name}", schema) for name, schema in document.get("$defs", {}).items())
    for root, schema in roots:
        for path, key, pattern in _walk_schema(schema, root.split("/"), _PATTERN_KEYWORDS):
            try:
                re.compile(pattern)
            except re.error as exc:
                yield Violation(
                    path=json_pointer([*path, key]),
                    message=f"{pattern!r} is not a regular expression taskschema can match "
                    f"(Python re: {exc})",
                )


def _resolves(defs: Mapping[str, Any], pointer: str) -> bool:
    node: Any = {"$defs": defs}
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return isinstance(node, dict | bool)


def _check_defaults(document: Mapping[str, Any]) -> Iterator[Violation]:
    properties = document["params"]["properties"]
    defs = document.get("$defs", {})
    for name, schema in properties.items():
        if isinstance(schema, dict) and "default" in schema:
            validator = compile_schema({**schema, "$defs": defs})
            for problem in violations(validator, schema["default"]):
                yield Violation(
                    path=json_pointer(["params", "properties", name, "default"]),
                    message=f"default does not match the parameter's schema: {problem.message}",
                )


def _check_options(options: Mapping[str, Any]) -> Iterator[Violation]:
    soft, hard = options.get("soft_time_limit"), options.get("time_limit")
    if soft is not None and hard is not None and soft >= hard:
        yield Violation(
            path="/options/soft_time_limit",
            message=f"soft_time_limit ({soft}) must be lower than time_limit ({hard})",
        )
