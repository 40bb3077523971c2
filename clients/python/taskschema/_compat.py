"""Compatibility between contract versions, decided as inclusion between sets of documents.

`A ⊆ B` holds when every document valid under schema A is valid under schema B. For a
change old → new, BACKWARD means old `params` ⊆ new `params` (producers still on the old
contract keep working against upgraded workers) and new `returns` ⊆ old `returns` (old
readers can read what upgraded workers return); FORWARD is the reverse.

The checker is sound: it answers "compatible" only when it has proved inclusion. What it
cannot decide (two different regexes, a keyword it does not know) is a violation that
says so. Recursive schemas terminate: a pair of schemas already under comparison is
assumed to be included (coinduction), which is sound because documents are finite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ._contract import TaskContract, bundle
from ._models import CompatibilityMode, CompatibilityReport, Direction, Incompatibility, Side
from ._validation import compile_schema, json_pointer

_CONSEQUENCES: dict[tuple[Side, Direction], str] = {
    ("params", Direction.BACKWARD): "producers still on the older contract send calls that "
    "workers on the new contract refuse",
    ("params", Direction.FORWARD): "producers on the new contract send calls that workers "
    "still on the older contract refuse",
    ("returns", Direction.BACKWARD): "workers on the new contract return values that readers "
    "still on the older contract refuse",
    ("returns", Direction.FORWARD): "workers still on the older contract return values that "
    "readers on the new contract refuse",
}


def consequence(side: Side, direction: Direction) -> str:
    """Who breaks when a violation of this side and direction ships."""
    return _CONSEQUENCES[(side, direction)]


def directions(mode: CompatibilityMode) -> tuple[Direction, ...]:
    base = mode.value.removesuffix("_TRANSITIVE")
    return {
        "NONE": (),
        "BACKWARD": (Direction.BACKWARD,),
        "FORWARD": (Direction.FORWARD,),
        "FULL": (Direction.BACKWARD, Direction.FORWARD),
    }[base]


def is_transitive(mode: CompatibilityMode) -> bool:
    return mode.value.endswith("_TRANSITIVE")


def check_compatibility(
    new: TaskContract,
    earlier: Sequence[tuple[int | None, TaskContract]],
    mode: CompatibilityMode,
) -> CompatibilityReport:
    """Check `new` against earlier versions (oldest first) under `mode`.

    Transitive modes compare with every version given; the others with the last one.
    """
    compared = earlier if is_transitive(mode) else earlier[-1:]
    violations: list[Incompatibility] = []
    warnings: list[Incompatibility] = []
    for version, old in compared:
        for direction in directions(mode):
            found = compare(old, new, direction)
            violations.extend(v.model_copy(update={"version": version}) for v in found)
        if directions(mode):
            warnings.extend(_default_changes(old, new, version))
    return CompatibilityReport(
        compatible=not violations,
        mode=mode,
        violations=_unique(violations),
        warnings=_unique(warnings),
    )


def compare(old: TaskContract, new: TaskContract, direction: Direction) -> list[Incompatibility]:
    """Violations of the change old → new in one direction."""
    violations: list[Incompatibility] = []
    for side in ("params", "returns"):
        # Who must accept whose documents: BACKWARD params old ⊆ new, returns new ⊆ old.
        old_is_sub = (side == "params") == (direction is Direction.BACKWARD)
        sub, sup = (old, new) if old_is_sub else (new, old)
        checker = _Checker(sub, sup, new_is_sup=old_is_sub, fill_defaults=side == "params")
        issues = checker.subset(
            _Node(sub, (side,), getattr(sub, side)),
            _Node(sup, (side,), getattr(sup, side)),
            root=True,
        )
        if side == "params":
            issues.extend(_positions(sub, sup, new_is_sup=old_is_sub))
        violations.extend(issue.to_violation(side, direction) for issue in issues)
    return violations


def _unique(items: Iterable[Incompatibility]) -> list[Incompatibility]:
    seen: dict[tuple[Any, ...], Incompatibility] = {}
    for item in items:
        seen.setdefault((item.side, item.direction, item.path, item.rule, item.message), item)
    return sorted(seen.values(), key=lambda v: (v.side, v.path, v.rule, v.direction or ""))


# -- the inclusion checker -------------------------------------------------------------

JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_ANNOTATIONS = frozenset(
    {
        "title", "description", "examples", "$comment", "default", "deprecated",
        "readOnly", "writeOnly", "$schema", "contentEncoding", "contentMediaType",
        "contentSchema", "$defs", "definitions",
    }
)  # fmt: skip
_APPLICATORS = frozenset({"$ref", "allOf", "anyOf", "oneOf", "not", "if", "dependentSchemas"})
_UNDERSTOOD = frozenset(
    {
        "type", "enum", "const", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
        "multipleOf", "minLength", "maxLength", "pattern", "format", "items", "prefixItems",
        "minItems", "maxItems", "uniqueItems", "properties", "required", "additionalProperties",
        "patternProperties", "propertyNames", "minProperties", "maxProperties",
        "dependentRequired", "unevaluatedProperties", "$ref", "allOf", "anyOf", "oneOf", "not",
    }
)  # fmt: skip
# Understood only when unchanged: each is a conjunct, so an identical copy on both sides
# (or its removal from the wider side) keeps inclusion; any other change is undecided.
_COMPARED_VERBATIM = frozenset(
    {"if", "then", "else", "contains", "minContains", "maxContains", "dependentSchemas",
     "unevaluatedItems"}
)  # fmt: skip
_STRING_LIMITS = (("minLength", "lower"), ("maxLength", "upper"))
_ARRAY_LIMITS = (("minItems", "lower"), ("maxItems", "upper"))
_OBJECT_LIMITS = (("minProperties", "lower"), ("maxProperties", "upper"))

Pointer = tuple[str | int, ...]


@dataclass(frozen=True)
class _Node:
    """A schema inside a contract, with where it sits (for paths and `$ref`s).

    `siblings` are the other branches of the `oneOf` this node is a branch of: a value
    of this branch is known not to match them.
    """

    contract: TaskContract
    ptr: Pointer
    schema: Any
    siblings: tuple[_Node, ...] = ()

    def child(self, *parts: str | int) -> _Node:
        node = self.schema
        for part in parts:
            node = node[part]
        return _Node(self.contract, (*self.ptr, *parts), node)

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.schema.get(keyword, default) if isinstance(self.schema, dict) else default


@dataclass
class _Issue:
    sub_ptr: Pointer
    sup_ptr: Pointer
    rule: str
    message: str
    new_is_sup: bool
    suffix: Pointer = ()

    def to_violation(self, side: Side, direction: Direction) -> Incompatibility:
        ptr = self.sup_ptr if self.new_is_sup else self.sub_ptr
        return Incompatibility(
            side=side,
            direction=direction,
            path=json_pointer([*ptr, *self.suffix]),
            rule=self.rule,
            message=self.message,
        )


@dataclass
class _Checker:
    sub_contract: TaskContract
    sup_contract: TaskContract
    new_is_sup: bool
    fill_defaults: bool
    _assumed: set[tuple[int, ...]] = field(default_factory=set)
    _done: dict[tuple[int, ...], list[_Issue]] = field(default_factory=dict)

    @property
    def sub_name(self) -> str:
        return "new" if not self.new_is_sup else "old"

    @property
    def sup_name(self) -> str:
        return "new" if self.new_is_sup else "old"

    def issue(self, a: _Node, b: _Node, rule: str, message: str, *suffix: str | int) -> _Issue:
        return _Issue(a.ptr, b.ptr, rule, message, self.new_is_sup, suffix)

    # -- entry ---------------------------------------------------------------------

    def subset(self, a: _Node, b: _Node, *, root: bool = False) -> list[_Issue]:
        """Issues preventing `a ⊆ b`; empty when inclusion is proved."""
        a, b = _follow(a), _follow(b)
        if a.schema is False or _is_true(b.schema):
            return []
        if b.schema is False:
            return [
                self.issue(
                    a,
                    b,
                    "schema-false",
                    f"the {self.sup_name} schema accepts "
                    f"nothing here, the {self.sub_name} one accepted values",
                )
            ]
        key = (id(a.schema), id(b.schema), *(id(s.schema) for s in a.siblings))
        if key in self._done:
            return self._done[key]
        if key in self._assumed or _equal(a, b):
            return []
        self._assumed.add(key)
        try:
            issues = self._subset(a, b, root)
        finally:
            self._assumed.discard(key)
        if not root:
            self._done[key] = issues
        return issues

    def _subset(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        if a.schema is True:
            a = _Node(a.contract, a.ptr, {})
        # B = b1 and b2 and ...: A must be within each conjunct.
        conjuncts = _conjuncts(b)
        if conjuncts is not None:
            return [issue for part in conjuncts for issue in self.subset(a, part, root=root)]
        # A = a1 and a2 and ...: within B if the merged whole is, else if any conjunct is.
        conjuncts = _conjuncts(a)
        if conjuncts is not None:
            merged = _merge(conjuncts)
            if merged is not None:
                return self.subset(merged, b, root=root)
            attempts = [self.subset(part, b, root=root) for part in conjuncts]
            return min(attempts, key=len)
        # A = a1 or a2 or ...: every branch within B.
        branches = _branches(a)
        if branches is not None:
            return [issue for branch in branches for issue in self.subset(branch, b, root=root)]
        if "not" in b.schema:
            issues = self._not(a, b)
            rest = _without(b, "not")
            return issues + (self.subset(a, rest, root=root) if rest else [])
        if "anyOf" in b.schema or "oneOf" in b.schema:
            return self._union(a, b, root)
        return self._simple(a, b, root)

    # -- composition ---------------------------------------------------------------

    def _not(self, a: _Node, b: _Node) -> list[_Issue]:
        excluded = b.child("not")
        if _disjoint(a, excluded):
            return []
        if "not" in a.schema and not self.subset(excluded, a.child("not")):
            return []  # the excluded set narrowed: what A excluded covers what B excludes
        return [
            self.issue(
                a,
                b,
                "not-widened",
                f"the {self.sup_name} schema excludes "
                f"values (`not`) that the {self.sub_name} one accepted",
                "not",
            )
        ]

    def _union(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        keyword = "anyOf" if "anyOf" in b.schema else "oneOf"
        issues: list[_Issue] = []
        rest = _without(b, keyword)
        if rest is not None:
            issues.extend(self.subset(a, rest, root=root))
        options = [b.child(keyword, index) for index in range(len(b.schema[keyword]))]
        attempts = [self.subset(a, option, root=root) for option in options]
        fits = [index for index, attempt in enumerate(attempts) if not attempt]
        if not fits:
            best = min(range(len(options)), key=lambda index: len(attempts[index]))
            return [
                *issues,
                self.issue(
                    a,
                    b,
                    "union-branch-missing",
                    f"no {keyword} branch of the "
                    f"{self.sup_name} schema accepts everything the {self.sub_name} "
                    f"one did (closest: branch {best})",
                    keyword,
                ),
                *attempts[best],
            ]
        if keyword == "oneOf":
            index = fits[0]
            for other, option in enumerate(options):
                if other != index and not _disjoint(a, option, excluded=a.siblings):
                    issues.append(
                        self.issue(
                            a,
                            b,
                            "one-of-branch-overlaps",
                            f"a value accepted by the "
                            f"{self.sub_name} schema may match oneOf branches {index} and "
                            f"{other} at once, and oneOf then refuses it",
                            keyword,
                            other,
                        )
                    )
        return issues

    # -- one schema without applicators ----------------------------------------------

    def _simple(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        issues: list[_Issue] = []
        values = _finite_values(a.schema)
        if values is not None:
            return self._values(a, b, values)
        if "enum" in b.schema or "const" in b.schema:
            keyword = "enum" if "enum" in b.schema else "const"
            return [
                self.issue(
                    a,
                    b,
                    f"{keyword}-added",
                    f"the {self.sup_name} schema allows "
                    f"only {_show(b.schema[keyword])}; the {self.sub_name} one "
                    "allowed other values",
                    keyword,
                )
            ]
        types_a, types_b = _types(a.schema), _types(b.schema)
        lost = sorted(t for t in types_a if not _covers(types_b, t))
        if lost:
            kept = [t for t in types_a if _covers(types_b, t)]
            rule = "type-narrowed" if kept else "type-changed"
            issues.append(
                self.issue(
                    a,
                    b,
                    rule,
                    f"type {_show_types(types_a)} became "
                    f"{_show_types(types_b)}: {', '.join(lost)} no longer "
                    "accepted",
                    "type",
                )
            )
        live = {t for t in types_a if _covers(types_b, t)}
        if live & {"number", "integer"}:
            issues.extend(self._numbers(a, b, live))
        if "string" in live:
            issues.extend(self._limits(a, b, _STRING_LIMITS))
            issues.extend(self._same_or_absent(a, b, ("pattern", "format")))
        if "array" in live:
            issues.extend(self._arrays(a, b))
        if "object" in live:
            issues.extend(self._objects(a, b, root))
        issues.extend(self._unknown(a, b))
        return issues

    def _values(self, a: _Node, b: _Node, values: list[Any]) -> list[_Issue]:
        validator = compile_schema(_bundle_node(b))
        refused = [value for value in values if not validator.is_valid(value)]
        if not refused:
            return []
        keyword = next((k for k in ("const", "enum") if k in a.schema), "type")
        rule = "const-changed" if keyword == "const" else "enum-narrowed"
        return [
            self.issue(
                a,
                b,
                rule,
                f"{_show(refused)} accepted by the {self.sub_name} "
                f"schema, refused by the {self.sup_name} one",
                keyword,
            )
        ]

    def _numbers(self, a: _Node, b: _Node, live: set[str]) -> list[_Issue]:
        issues = []
        for keywords, side in (
            (("minimum", "exclusiveMinimum"), "lower"),
            (("maximum", "exclusiveMaximum"), "upper"),
        ):
            bound_a, bound_b = _bound(a.schema, *keywords), _bound(b.schema, *keywords)
            if bound_b is None or (bound_a is not None and _within(bound_a, bound_b, side)):
                continue
            keyword = keywords[1] if bound_b[1] else keywords[0]
            rule = "limit-added" if bound_a is None else "limit-tightened"
            was = "" if bound_a is None else f" (was {_num(bound_a[0])})"
            issues.append(self.issue(a, b, rule, f"{keyword} {_num(bound_b[0])}{was}", keyword))
        step_b = _decimal(b.get("multipleOf"))
        if step_b is not None:
            step_a = _decimal(a.get("multipleOf"))
            integers_only = live <= {"integer"} and step_b == 1
            divides = step_a is not None and (step_a / step_b) == (step_a / step_b).to_integral()
            if not (divides or integers_only):
                rule = "multiple-of-added" if step_a is None else "multiple-of-changed"
                issues.append(
                    self.issue(
                        a,
                        b,
                        rule,
                        f"multipleOf {_num(step_b)} is not a "
                        f"divisor of the {self.sub_name} multipleOf "
                        f"{_num(step_a) if step_a is not None else '(none)'}",
                        "multipleOf",
                    )
                )
        return issues

    def _limits(self, a: _Node, b: _Node, limits: Sequence[tuple[str, str]]) -> list[_Issue]:
        issues = []
        for keyword, side in limits:
            limit_b = b.get(keyword)
            if limit_b is None:
                continue
            limit_a = a.get(keyword)
            if limit_a is not None and _within((limit_a, False), (limit_b, False), side):
                continue
            rule = "limit-added" if limit_a is None else "limit-tightened"
            was = "" if limit_a is None else f" (was {limit_a})"
            issues.append(self.issue(a, b, rule, f"{keyword} {limit_b}{was}", keyword))
        return issues

    def _same_or_absent(self, a: _Node, b: _Node, keywords: Iterable[str]) -> list[_Issue]:
        issues = []
        for keyword in keywords:
            if keyword in b.schema and a.get(keyword) != b.schema[keyword]:
                added = keyword not in a.schema
                rule = f"{keyword}-{'added' if added else 'changed'}"
                detail = "" if added else f" from {a.schema[keyword]!r}"
                issues.append(
                    self.issue(
                        a,
                        b,
                        rule,
                        f"{keyword} {b.schema[keyword]!r} "
                        f"{'added' if added else 'changed' + detail}: values "
                        f"the {self.sub_name} schema accepted may fail it",
                        keyword,
                    )
                )
        return issues

    def _arrays(self, a: _Node, b: _Node) -> list[_Issue]:
        issues = self._limits(a, b, _ARRAY_LIMITS)
        if b.get("uniqueItems") is True and a.get("uniqueItems") is not True:
            issues.append(
                self.issue(
                    a,
                    b,
                    "unique-items-added",
                    "uniqueItems added: arrays with repeated items are refused",
                    "uniqueItems",
                )
            )
        prefix_a, prefix_b = a.get("prefixItems", []), b.get("prefixItems", [])
        max_items = a.get("maxItems")
        for index in range(max(len(prefix_a), len(prefix_b))):
            if max_items is not None and index >= max_items:
                break
            item_a = a.child("prefixItems", index) if index < len(prefix_a) else _items(a)
            item_b = b.child("prefixItems", index) if index < len(prefix_b) else _items(b)
            if item_a.schema is False:
                break
            found = self.subset(item_a, item_b)
            if found and index >= len(prefix_a) and _is_true(item_a.schema):
                issues.append(
                    self.issue(
                        a,
                        b,
                        "tuple-item-added-to-open-tuple",
                        f"item "
                        f"{index} now has a schema, but the {self.sub_name} "
                        "tuple was open: any value could sit there",
                        "prefixItems",
                        index,
                    )
                )
            else:
                issues.extend(found)
        if max_items is None or max_items > max(len(prefix_a), len(prefix_b)):
            issues.extend(self.subset(_items(a), _items(b)))
        return issues

    def _objects(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        issues = self._limits(a, b, _OBJECT_LIMITS)
        props_a, props_b = a.get("properties", {}), b.get("properties", {})
        required_a, required_b = set(a.get("required", [])), b.get("required", [])
        for index, name in enumerate(required_b):
            if name in required_a:
                continue
            filled = root and self.fill_defaults and "default" in props_b.get(name, {})
            if not filled:
                issues.append(
                    self.issue(
                        a,
                        b,
                        "property-made-required",
                        f"{name!r} is required now; {self.sub_name} documents may lack it",
                        "required",
                        index,
                    )
                )
        patterns_a, patterns_b = a.get("patternProperties", {}), b.get("patternProperties", {})
        if set(patterns_a) != set(patterns_b):
            issues.append(
                self.issue(
                    a,
                    b,
                    "pattern-properties-changed",
                    "patternProperties keys differ; inclusion between regexes cannot be decided",
                    "patternProperties",
                )
            )
        else:
            for pattern in patterns_b:
                issues.extend(
                    self.subset(
                        a.child("patternProperties", pattern), b.child("patternProperties", pattern)
                    )
                )
        for name in dict.fromkeys([*props_a, *props_b]):
            issues.extend(self._property(a, b, name))
        extra_a, extra_b = _additional(a), _additional(b)
        if extra_b is not None and (extra_a is None or extra_a.schema is not False):
            found = self.subset(extra_a or _Node(a.contract, a.ptr, True), extra_b)
            if found and extra_b is not None and extra_b.schema is False:
                issues.append(
                    self.issue(
                        a,
                        b,
                        "object-closed",
                        f"the {self.sup_name} object "
                        "refuses properties it does not declare; the "
                        f"{self.sub_name} one accepted them",
                        "additionalProperties",
                    )
                )
            else:
                issues.extend(found)
        issues.extend(self._property_names(a, b))
        for key, needed in b.get("dependentRequired", {}).items():
            if not set(needed) <= set(a.get("dependentRequired", {}).get(key, [])):
                issues.append(
                    self.issue(
                        a,
                        b,
                        "dependency-added",
                        f"when {key!r} is present {_show(needed)} must be too",
                        "dependentRequired",
                        key,
                    )
                )
        return issues

    def _property(self, a: _Node, b: _Node, name: str) -> list[_Issue]:
        in_a = _schemas_for(a, name)
        if any(node.schema is False for node in in_a):
            return []  # A never carries `name`
        issues: list[_Issue] = []
        declared_a = name in a.get("properties", {})
        for target in _schemas_for(b, name):
            attempts = [self.subset(node, target) for node in in_a]
            found = attempts[0] if all(attempts) else []
            if not found:
                continue
            if not declared_a:
                issues.append(
                    self.issue(
                        a,
                        b,
                        "property-added-to-open-object",
                        f"{name!r} is "
                        f"declared now, but the {self.sub_name} object was "
                        f"open: documents may already carry {name!r} with "
                        "values its new schema refuses",
                        "properties",
                        name,
                    )
                )
            elif target.schema is False:
                issues.append(
                    self.issue(
                        a,
                        b,
                        "property-removed-from-closed-object",
                        f"{name!r} is accepted by the {self.sub_name} schema; the "
                        f"{self.sup_name} object is closed and does not declare it",
                        "properties",
                        name,
                    )
                )
            else:
                issues.extend(found)
        return issues

    def _property_names(self, a: _Node, b: _Node) -> list[_Issue]:
        if "propertyNames" not in b.schema:
            return []
        if "propertyNames" not in a.schema:
            return [
                self.issue(
                    a,
                    b,
                    "property-names-added",
                    "propertyNames added: names the "
                    f"{self.sub_name} schema accepted may be refused",
                    "propertyNames",
                )
            ]
        return self.subset(a.child("propertyNames"), b.child("propertyNames"))

    def _unknown(self, a: _Node, b: _Node) -> list[_Issue]:
        issues = []
        for keyword, value in b.schema.items():
            if keyword in _UNDERSTOOD or keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            if keyword in a.schema and (
                _equal(a.child(keyword), b.child(keyword))
                if isinstance(value, dict | bool)
                else a.schema[keyword] == value
            ):
                continue
            what = (
                "is only checked when unchanged"
                if keyword in _COMPARED_VERBATIM
                else ("is not understood by the checker")
            )
            issues.append(
                self.issue(
                    a,
                    b,
                    "undecidable-keyword",
                    f"{keyword!r} {what}; it was "
                    "added or changed, so compatibility cannot be proved",
                    keyword,
                )
            )
        return issues


_MISSING: Any = object()


# -- schema helpers -----------------------------------------------------------------------


def _follow(node: _Node) -> _Node:
    """Resolve a schema that is only a `$ref` (plus annotations) to its target."""
    seen: set[int] = set()
    while (
        isinstance(node.schema, dict)
        and "$ref" in node.schema
        and not (set(node.schema) - _ANNOTATIONS - {"$ref"})
    ):
        if id(node.schema) in seen:
            return _Node(node.contract, node.ptr, True)  # `$ref` cycle: constrains nothing
        seen.add(id(node.schema))
        node = _target(node)
    return node


def _target(node: _Node) -> _Node:
    parts = node.schema["$ref"].removeprefix("#/").split("/")
    ptr = tuple(part.replace("~1", "/").replace("~0", "~") for part in parts)
    # Contracts are validated on load: every `$ref` is `#/$defs/...` and resolves.
    schema: Any = {"$defs": node.contract.defs}
    for part in ptr:
        schema = schema[int(part)] if isinstance(schema, list) else schema[part]
    return _Node(node.contract, ptr, schema)


def _is_true(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and not set(schema) - _ANNOTATIONS)


def _conjuncts(node: _Node) -> list[_Node] | None:
    """`allOf` members, a `$ref` with siblings, and the siblings, as separate schemas."""
    schema = node.schema
    if not isinstance(schema, dict) or not ({"allOf", "$ref"} & set(schema)):
        return None
    parts: list[_Node] = []
    if "$ref" in schema:
        parts.append(_target(node))
    parts.extend(node.child("allOf", index) for index in range(len(schema.get("allOf", []))))
    rest = {key: value for key, value in schema.items() if key not in ("allOf", "$ref")}
    if set(rest) - _ANNOTATIONS:
        parts.append(_Node(node.contract, node.ptr, rest))
    return parts


def _merge(parts: Sequence[_Node]) -> _Node | None:
    """One schema equal to the conjunction, when the parts' keywords do not collide."""
    merged: dict[str, Any] = {}
    for part in parts:
        resolved = _follow(part)
        schema = resolved.schema
        if schema is True:
            continue
        if schema is False:
            return None
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword in merged and merged[keyword] != value:
                return None
            merged[keyword] = value
    if {"allOf", "$ref"} & set(merged):
        return None
    return _Node(parts[0].contract, parts[0].ptr, merged)


def _branches(node: _Node) -> list[_Node] | None:
    """The alternatives of a schema with `anyOf`/`oneOf`, each joined with the siblings."""
    schema = node.schema
    keyword = "anyOf" if "anyOf" in schema else "oneOf" if "oneOf" in schema else None
    if keyword is None:
        return None
    rest = {key: value for key, value in schema.items() if key != keyword}
    branches = []
    for index in range(len(schema[keyword])):
        branch = _follow(node.child(keyword, index))
        merged = _merge([_Node(node.contract, node.ptr, rest), branch]) if rest else branch
        # Dropping the siblings only widens the branch, so proving it within B still holds.
        chosen = merged or branch
        if keyword == "oneOf":
            others = range(len(schema[keyword]))
            chosen = replace(
                chosen, siblings=tuple(node.child(keyword, i) for i in others if i != index)
            )
        branches.append(chosen)
    return branches


def _without(node: _Node, keyword: str) -> _Node | None:
    rest = {key: value for key, value in node.schema.items() if key != keyword}
    return _Node(node.contract, node.ptr, rest) if set(rest) - _ANNOTATIONS else None


def _items(node: _Node) -> _Node:
    if "items" in node.schema:
        return node.child("items")
    return _Node(node.contract, (*node.ptr, "items"), True)


def _additional(node: _Node) -> _Node | None:
    """The schema for undeclared properties, or None when any value is allowed."""
    if "additionalProperties" in node.schema:
        return node.child("additionalProperties")
    if "unevaluatedProperties" in node.schema and not _APPLICATORS & set(node.schema):
        return node.child("unevaluatedProperties")
    return None


def _schemas_for(node: _Node, name: str) -> list[_Node]:
    """Every schema a property `name` must pass here (`true` when nothing constrains it)."""
    found = []
    if name in node.get("properties", {}):
        found.append(node.child("properties", name))
    for pattern in node.get("patternProperties", {}):
        if re.search(pattern, name):
            found.append(node.child("patternProperties", pattern))
    if not found:
        extra = _additional(node)
        found.append(extra or _Node(node.contract, (*node.ptr, "additionalProperties"), True))
    return found


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        return set(JSON_TYPES - {"integer"})
    return {declared} if isinstance(declared, str) else set(declared)


def _covers(types: set[str], json_type: str) -> bool:
    return json_type in types or (json_type == "integer" and "number" in types)


def _finite_values(schema: Any) -> list[Any] | None:
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    types = _types(schema) if "type" in schema else None
    if types == {"null"}:
        return [None]
    if types == {"boolean"}:
        return [False, True]
    return None


def _bundle_node(node: _Node) -> Any:
    return bundle({"s": node.schema, "$defs": node.contract.defs}, "s")


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[Any, bool] | None:
    values = []
    if inclusive in schema:
        values.append((schema[inclusive], False))
    if exclusive in schema:
        values.append((schema[exclusive], True))
    if not values:
        return None
    lower = inclusive.startswith("min")
    # The tighter bound wins; at equal values the exclusive one is tighter.
    return max(values, key=lambda v: (v[0] if lower else -v[0], v[1]))


def _within(a: tuple[Any, bool], b: tuple[Any, bool], side: str) -> bool:
    """Whether bound `a` is at least as tight as bound `b` on this side."""
    if a[0] != b[0]:
        return bool(a[0] > b[0] if side == "lower" else a[0] < b[0])
    return a[1] or not b[1]


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _disjoint(a: _Node, b: _Node, excluded: Sequence[_Node] = ()) -> bool:
    """Whether no document can be valid under both (False when it cannot be proved)."""
    a, b = _follow(a), _follow(b)
    if a.schema is False or b.schema is False:
        return True
    if any(_equal(b, other) for other in excluded):
        return True
    if a.schema is True or b.schema is True:
        return False
    for x, y in ((a, b), (b, a)):
        branches = _branches(x)
        if branches is not None:
            return all(_disjoint(branch, y) for branch in branches)
        values = _finite_values(x.schema)
        if values is not None:
            validator = compile_schema(_bundle_node(y))
            return not any(validator.is_valid(value) for value in values)
    types_a, types_b = _types(a.schema), _types(b.schema)
    common = {t for t in types_a if _covers(types_b, t)} | {
        t for t in types_b if _covers(types_a, t)
    }
    if not common:
        return True
    if common != {"object"}:
        return False
    for x, y in ((a, b), (b, a)):
        for name in x.get("required", []):
            in_y = _schemas_for(y, name)
            if (
                name in x.get("properties", {})
                and in_y
                and any(_disjoint(x.child("properties", name), node) for node in in_y)
            ):
                return True
    return False


def _equal(a: _Node, b: _Node, assumed: set[tuple[int, int]] | None = None) -> bool:
    """Structural equality of two schemas, `$ref`s followed, annotations ignored."""
    assumed = set() if assumed is None else assumed
    a, b = _follow(a), _follow(b)
    if not (isinstance(a.schema, dict) and isinstance(b.schema, dict)):
        both_true = _is_true(a.schema) and _is_true(b.schema)
        return both_true or (a.schema is False and b.schema is False)
    key = (id(a.schema), id(b.schema))
    if key in assumed:
        return True
    assumed.add(key)
    keys_a = set(a.schema) - _ANNOTATIONS
    if keys_a != set(b.schema) - _ANNOTATIONS:
        return False
    for keyword in keys_a:
        value_a, value_b = a.schema[keyword], b.schema[keyword]
        if keyword == "$ref":
            if not _equal(_target(a), _target(b), assumed):
                return False
        elif keyword in ("properties", "patternProperties", "dependentSchemas"):
            if set(value_a) != set(value_b) or not all(
                _equal(a.child(keyword, name), b.child(keyword, name), assumed) for name in value_a
            ):
                return False
        elif keyword in ("allOf", "anyOf", "oneOf", "prefixItems"):
            if len(value_a) != len(value_b) or not all(
                _equal(a.child(keyword, i), b.child(keyword, i), assumed)
                for i in range(len(value_a))
            ):
                return False
        elif isinstance(value_a, dict | bool) and keyword not in ("const", "uniqueItems"):
            if isinstance(value_a, bool) or isinstance(value_b, bool):
                if value_a != value_b:
                    return False
            elif not _equal(a.child(keyword), b.child(keyword), assumed):
                return False
        elif value_a != value_b or type(value_a) is not type(value_b):
            return False
    return True


def _positions(sub: TaskContract, sup: TaskContract, *, new_is_sup: bool) -> Iterator[_Issue]:
    """Positional Celery arguments bind by order: every position a `sub` producer may fill
    must exist in `sup` under the same name."""
    for index, name in enumerate(sub.parameters):
        there = sup.parameters[index] if index < len(sup.parameters) else None
        if there != name:
            where = f"is {there!r}" if there else "does not exist"
            yield _Issue(
                ("params",),
                ("params",),
                "parameter-position-changed",
                f"position "
                f"{index} holds {name!r} in the {'old' if new_is_sup else 'new'} "
                f"contract and {where} in the {'new' if new_is_sup else 'old'} one: "
                "positional calls bind to other parameters or fail",
                new_is_sup,
                ("properties",),
            )
            return


def _default_changes(
    old: TaskContract, new: TaskContract, version: int | None
) -> Iterator[Incompatibility]:
    """Parameters whose default changed: compatible (workers fill defaults), but calls
    that omit them now behave differently."""
    for name, schema in new.params["properties"].items():
        before = old.params["properties"].get(name)
        if not isinstance(schema, dict) or not isinstance(before, dict):
            continue
        old_default, new_default = before.get("default", _MISSING), schema.get("default", _MISSING)
        if old_default != new_default:
            yield Incompatibility(
                side="params",
                path=json_pointer(["params", "properties", name, "default"]),
                version=version,
                rule="default-changed",
                message=f"default of {name!r} changed from {_show_default(old_default)} to "
                f"{_show_default(new_default)}; calls that omit it now get a different value",
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _show_default(value: Any) -> str:
    return "(none)" if value is _MISSING else _show(value)


def _show_types(types: set[str]) -> str:
    return "/".join(sorted(types)) if len(types) < 6 else "any"


def _num(value: Any) -> str:
    return format(value, "f").rstrip("0").rstrip(".") if isinstance(value, Decimal) else repr(value)
