"""Registry references: a `$ref` to a definition of another registered contract, and the
bundling that turns a contract holding them into a self-contained one.

A registry reference names an immutable document, so bundling it once is final:

    /schemas/{id}#/$defs/{Name}                 a global schema id
    /tasks/{task}/versions/{n}#/$defs/{Name}    a version, resolved to its schema id

Bundling copies the referenced definition, and every definition it refers to inside its
own contract, into the new contract's `$defs`, and rewrites the `$ref`s to the local
`#/$defs/...` form. The result holds only local references, so workers, codegen and the
compatibility checker never need the registry. This module is pure: documents come from
a `fetch` callback (the registry's store, or its HTTP API from the CLI).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._contract import _ORDERED_PATHS, _resolves, _walk_schema
from ._exceptions import ContractError, Violation
from ._json import canonical_json
from ._models import SchemaReference
from ._validation import json_pointer

_LOCAL_DEFS: Final = "#/$defs/"
_REF_ONLY: Final = frozenset({"$ref"})
_SCHEMA_PATH: Final = re.compile(r"/schemas/(?P<id>[1-9][0-9]{0,17})")
_VERSION_PATH: Final = re.compile(r"/tasks/(?P<task>[^/#]+)/versions/(?P<version>[^/#]+)")
_VERSION_NUMBER: Final = re.compile(r"[1-9][0-9]{0,8}")
FORMS: Final = "'/schemas/{id}#/$defs/{Name}' or '/tasks/{task}/versions/{n}#/$defs/{Name}'"


@dataclass(frozen=True)
class SchemaAddress:
    """The registered document a registry reference points at."""

    schema_id: int | None = None
    task: str | None = None
    version: int | None = None

    @property
    def path(self) -> str:
        """The registry API path serving the document."""
        if self.schema_id is not None:
            return f"/schemas/{self.schema_id}"
        return f"/tasks/{self.task}/versions/{self.version}"


@dataclass(frozen=True)
class FetchedSchema:
    """A registered contract document and its global schema id."""

    schema_id: int
    document: Mapping[str, Any]


Fetch = Callable[[SchemaAddress], FetchedSchema | None]


@dataclass(frozen=True)
class RegistryRef:
    """A parsed registry reference: the document, and the definition inside it."""

    address: SchemaAddress
    definition: str  # a name in the document's `$defs`
    rest: str = ""  # a JSON pointer below that definition, usually empty


@dataclass(frozen=True)
class Bundle:
    """A contract document with only local references, and where its copies came from."""

    document: dict[str, Any]
    references: tuple[SchemaReference, ...] = ()


def is_registry_ref(value: str) -> bool:
    """Whether a `$ref` is registry-relative (an absolute path, not `//host`)."""
    return value.startswith("/") and not value.startswith("//")


def parse_registry_ref(value: str) -> RegistryRef | str:
    """The reference `value` names, or a sentence saying why it is not a valid one."""
    location, hash_sign, fragment = value.partition("#")
    if hash_sign and fragment.startswith("/$defs/") and len(fragment) > len("/$defs/"):
        name, _, rest = fragment.removeprefix("/$defs/").partition("/")
        definition = _unescape(name)
        suffix = f"/{rest}" if rest else ""
        if schema := _SCHEMA_PATH.fullmatch(location):
            return RegistryRef(SchemaAddress(schema_id=int(schema["id"])), definition, suffix)
        if version := _VERSION_PATH.fullmatch(location):
            if version["version"] == "latest":
                return (
                    f"registry reference {value!r} names 'latest', which changes with every "
                    "publish: name a version number or a schema id"
                )
            if _VERSION_NUMBER.fullmatch(version["version"]):
                address = SchemaAddress(task=version["task"], version=int(version["version"]))
                return RegistryRef(address, definition, suffix)
    return f"unsupported registry reference {value!r}: write it as {FORMS}"


def registry_refs(document: Any) -> list[tuple[str, str]]:
    """(JSON pointer of the `$ref`, its value) for each registry reference in a document."""
    return [(json_pointer([*path, "$ref"]), value) for path, value in _registry_refs(document)]


def bundle_references(document: Mapping[str, Any], fetch: Fetch) -> Bundle:
    """`document` with every registry reference replaced by a local copy of its target.

    Raises `ContractError` listing, at each `$ref`'s JSON path, every reference that does
    not resolve. A document without registry references comes back unchanged; bundling a
    bundled document is a no-op.
    """
    if not _registry_refs(document):
        return Bundle(dict(document))
    # Bundle the canonical form, so that the names chosen and therefore the fingerprint
    # do not depend on the key order the author happened to write.
    canonical: dict[str, Any] = json.loads(canonical_json(document, ordered=_ORDERED_PATHS))
    return _Bundler(canonical, fetch).run()


# -- the bundler -------------------------------------------------------------------------

_Key = tuple[int, str]  # (schema id, definition name in that schema's $defs)


@dataclass
class _Bundler:
    document: dict[str, Any]
    fetch: Fetch
    _fetched: dict[SchemaAddress, FetchedSchema | None] = field(default_factory=dict)
    _sources: dict[int, Mapping[str, Any]] = field(default_factory=dict)  # id -> $defs
    _needed: dict[_Key, None] = field(default_factory=dict)  # discovery order

    def run(self) -> Bundle:
        found: list[tuple[list[str | int], str, RegistryRef, int]] = []
        problems: list[Violation] = []
        for path, value in _registry_refs(self.document):
            resolved = self._resolve(value)
            if isinstance(resolved, str):
                problems.append(Violation(path=json_pointer([*path, "$ref"]), message=resolved))
            else:
                found.append((path, value, *resolved))
        if problems:
            raise ContractError("contract has unresolvable registry references", problems)
        names = self._name_definitions()
        bundled = copy.deepcopy(self.document)
        defs: dict[str, Any] = bundled.setdefault("$defs", {})
        for (schema_id, name), local in names.items():
            if local not in defs:
                defs[local] = self._copy(schema_id, name, names)
        references: dict[str, SchemaReference] = {}
        for path, value, ref, schema_id in found:
            local_ref = _local_ref(names[(schema_id, ref.definition)], ref.rest)
            _set_ref(bundled, path, local_ref)
            references.setdefault(
                value, SchemaReference(ref=value, schema_id=schema_id, bundled_as=local_ref)
            )
        return Bundle(bundled, tuple(references.values()))

    def _resolve(self, value: str) -> tuple[RegistryRef, int] | str:
        """The parsed reference and its schema id, with its definitions' closure queued;
        a sentence saying why when it does not resolve."""
        ref = parse_registry_ref(value)
        if isinstance(ref, str):
            return ref
        fetched = self._fetch(ref.address)
        if fetched is None:
            what = (
                f"no schema with id {ref.address.schema_id}"
                if ref.address.schema_id is not None
                else f"no live version {ref.address.version} of task {ref.address.task!r}"
            )
            return f"registry reference {value!r}: the registry has {what}"
        defs = self._sources[fetched.schema_id]
        target = f"/$defs/{_escape(ref.definition)}{ref.rest}"
        if not _resolves(defs, target):
            known = ", ".join(sorted(defs)) or "none"
            return (
                f"registry reference {value!r}: schema {fetched.schema_id} has no definition "
                f"at #{target} (its $defs: {known})"
            )
        problem = self._queue_closure(fetched.schema_id, ref.definition)
        if problem is not None:
            return f"registry reference {value!r}: {problem}"
        return ref, fetched.schema_id

    def _fetch(self, address: SchemaAddress) -> FetchedSchema | None:
        if address not in self._fetched:
            fetched = self.fetch(address)
            self._fetched[address] = fetched
            if fetched is not None:
                defs = fetched.document.get("$defs", {})
                self._sources.setdefault(fetched.schema_id, defs if isinstance(defs, dict) else {})
        return self._fetched[address]

    def _queue_closure(self, schema_id: int, name: str) -> str | None:
        """Queue a definition and, transitively, the local definitions it refers to
        (a visited set, so recursive definitions terminate); a sentence if one of its
        references cannot be followed."""
        pending = [name]
        while pending:
            current = pending.pop()
            if (schema_id, current) in self._needed:
                continue
            self._needed[(schema_id, current)] = None
            defs = self._sources[schema_id]
            for path, value in _local_walk(defs[current], current):
                target = _local_target(value)
                if target is None or not _resolves(defs, value.removeprefix("#")):
                    where = json_pointer([*path, "$ref"])
                    return (
                        f"schema {schema_id} holds {value!r} at {where}, which is not a "
                        "local reference that resolves"
                    )
                pending.append(target)
        return None

    def _name_definitions(self) -> dict[_Key, str]:
        """The local name of each needed definition: an identical one the contract already
        holds under the same name, else the original name if free, else `Name_s{id}`."""
        own = self.document.get("$defs", {})
        names = {key: key[1] for key in self._reusable(own)}
        taken = set(own)
        for key in self._needed:
            if key not in names:
                names[key] = next(c for c in _candidates(*key) if c not in taken)
                taken.add(names[key])
        return {key: names[key] for key in self._needed}

    def _reusable(self, own: Mapping[str, Any]) -> set[_Key]:
        """Needed definitions the contract already holds verbatim under their own name,
        closed under the references inside them: the greatest such set, so mutually
        recursive definitions are recognised together."""
        reusable = {
            (schema_id, name)
            for schema_id, name in self._needed
            if name in own and _same(own[name], self._sources[schema_id][name])
        }
        changed = True
        while changed:
            changed = False
            for schema_id, name in list(reusable):
                targets = self._dependencies(schema_id, name)
                if not all((schema_id, target) in reusable for target in targets):
                    reusable.discard((schema_id, name))
                    changed = True
        return reusable

    def _dependencies(self, schema_id: int, name: str) -> Iterator[str]:
        for _path, value in _local_walk(self._sources[schema_id][name], name):
            target = _local_target(value)
            if target is not None:
                yield target

    def _copy(self, schema_id: int, name: str, names: Mapping[_Key, str]) -> Any:
        """A definition of schema `schema_id` with its local references renamed."""
        definition = copy.deepcopy(self._sources[schema_id][name])
        for path, value in _local_walk(definition, name):
            target = _local_target(value)
            assert target is not None  # checked when queued
            rest = value.removeprefix(_LOCAL_DEFS + _escape(target))
            _set_ref(
                {"$defs": {name: definition}}, path, _local_ref(names[(schema_id, target)], rest)
            )
        return definition


# -- helpers -------------------------------------------------------------------------------


def _registry_refs(document: Any) -> list[tuple[list[str | int], str]]:
    return [(path, value) for path, value in _all_refs(document) if is_registry_ref(value)]


def _all_refs(document: Any) -> Iterator[tuple[list[str | int], str]]:
    """(path to the schema holding it, value) of each `$ref` in params, returns, $defs."""
    if not isinstance(document, Mapping):
        return
    roots: list[tuple[list[str | int], Any]] = [
        (["params"], document.get("params")),
        (["returns"], document.get("returns")),
    ]
    defs = document.get("$defs")
    if isinstance(defs, Mapping):
        roots.extend((["$defs", name], schema) for name, schema in defs.items())
    for root, schema in roots:
        for path, _keyword, value in _walk_schema(schema, root, _REF_ONLY):
            yield list(path), value


def _local_walk(schema: Any, name: str) -> Iterator[tuple[list[str | int], str]]:
    for path, _keyword, value in _walk_schema(schema, ["$defs", name], _REF_ONLY):
        yield list(path), value


def _local_target(value: str) -> str | None:
    """The definition name a local `#/$defs/Name[/...]` reference starts with."""
    if not value.startswith(_LOCAL_DEFS) or len(value) == len(_LOCAL_DEFS):
        return None
    return _unescape(value.removeprefix(_LOCAL_DEFS).split("/", 1)[0])


def _candidates(schema_id: int, name: str) -> Iterator[str]:
    """Local names for a copied definition, in order of preference."""
    yield name
    yield f"{name}_s{schema_id}"
    for attempt in itertools.count(2):
        yield f"{name}_s{schema_id}_{attempt}"


def _local_ref(name: str, rest: str) -> str:
    return f"{_LOCAL_DEFS}{_escape(name)}{rest}"


def _set_ref(document: Any, path: Sequence[str | int], value: str) -> None:
    node = document
    for part in path:
        node = node[part]
    node["$ref"] = value


def _same(a: Any, b: Any) -> bool:
    # Canonical bytes, not ==: in Python True == 1, in JSON Schema they differ.
    return canonical_json(a) == canonical_json(b)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")
