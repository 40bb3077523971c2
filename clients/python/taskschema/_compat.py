"""Compatibility between contract versions, decided as inclusion between sets of documents.

`A ⊆ B` holds when every document valid under schema A is valid under schema B. For a
change old → new, BACKWARD means old `params` ⊆ new `params` (producers still on the old
contract keep working against upgraded workers) and new `returns` ⊆ old `returns` (old
readers can read what upgraded workers return); FORWARD is the reverse.

The checker is sound: it answers "compatible" only when it has proved inclusion. What it
cannot decide (two different regexes, a keyword it does not know) is a violation that
says so. Recursive schemas terminate: a pair of schemas already under comparison is
assumed to be included (coinduction), which is sound because documents are finite and
every cycle of a usable contract descends into the document (a `$ref` cycle that does not
is reported: the validator recurses forever on it). A result that leaned on such an
assumption is only remembered once the assumption itself is settled.

`params` are compared as the decoder sees them: calls that omit a top-level parameter
with a `default` get the default filled in before validation.

A violation describes the edit old → new, whichever side must include the other: when
the new schema is the included one (returns BACKWARD, params FORWARD), a constraint the
old schema has and the new one lacks was removed or loosened, and is named so. Its path
points where the edit shows in the new contract, or, for something removed, where it was
in the old one.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from ._contract import TaskContract, bundle
from ._exceptions import Violation
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


def who_breaks(violations: Iterable[Violation]) -> list[str]:
    """For each side and direction that has a violation, once, in the order they first
    appear: who breaks if the change ships, as "params backward: producers ..."."""
    broken = dict.fromkeys(
        (v.side, v.direction)
        for v in violations
        if isinstance(v, Incompatibility) and v.direction is not None
    )
    return [
        f"{side} {direction.value}: {consequence(side, direction)}" for side, direction in broken
    ]


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
    memo = _Memo()  # shared: both directions and every version compare the same schemas
    for version, old in compared:
        for direction in directions(mode):
            found = _compare(old, new, direction, memo)
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
    return _compare(old, new, direction, _Memo())


def _compare(
    old: TaskContract, new: TaskContract, direction: Direction, memo: _Memo
) -> list[Incompatibility]:
    violations: list[Incompatibility] = []
    new_document, old_document = _document(new), _document(old)
    for side in ("params", "returns"):
        # Who must accept whose documents: BACKWARD params old ⊆ new, returns new ⊆ old.
        old_is_sub = (side == "params") == (direction is Direction.BACKWARD)
        sub, sup = (old, new) if old_is_sub else (new, old)
        issues = _side_issues(sub, sup, side, memo, new_is_sup=old_is_sub)
        violations.extend(
            issue.to_violation(side, direction, new_document, old_document) for issue in issues
        )
    return violations


def _side_issues(
    sub: TaskContract, sup: TaskContract, side: Side, memo: _Memo, *, new_is_sup: bool
) -> list[_Issue]:
    """Issues preventing `sub`'s documents of one side from passing `sup`'s decoder."""
    sub_root = _Node(sub, (side,), getattr(sub, side))
    sup_root = _Node(sup, (side,), getattr(sup, side))
    if _equal(sub_root, sup_root, memo) and (side == "returns" or _same_call(sub, sup)):
        return []  # the same schema: the same decoder, the same documents
    issues = [
        _Issue(sub_root.ptr, ptr, "ref-cycle", message, new_is_sup)
        for ptr, message in _ref_cycles(sup, side)
    ]
    if side == "returns":
        checker = _Checker(sub, sup, memo, new_is_sup=new_is_sup)
        return issues + checker.subset(sub_root, sup_root, root=True)
    calls = _root_calls(sub_root, sup)
    if calls is not None:
        # The calls are listed: each is judged exactly as the decoder judges it.
        checker = _Checker(sub, sup, memo, new_is_sup=new_is_sup)
        issues.extend(checker.calls(sub_root, sup_root, calls))
    else:
        sent = _as_sent(sub_root)
        filled, conflicts = _filled_defaults(sent, sup, "new" if new_is_sup else "old")
        issues.extend(
            _Issue(sent.ptr, ptr, "default-fill-conflict", message, new_is_sup)
            for ptr, message in conflicts
        )
        checker = _Checker(sub, sup, memo, new_is_sup=new_is_sup, filled=filled)
        issues.extend(checker.subset(sent, sup_root, root=True))
    issues.extend(_positions(sub, sup, new_is_sup=new_is_sup))
    return issues


def _unique(items: Iterable[Incompatibility]) -> list[Incompatibility]:
    seen: dict[tuple[Any, ...], Incompatibility] = {}
    for item in items:
        key = (item.side, item.direction, item.path, item.rule, item.message, item.version)
        seen.setdefault(key, item)
    return sorted(
        seen.values(),
        key=lambda v: (
            v.side,
            v.path,
            v.rule,
            v.direction or "",
            v.version if v.version is not None else -1,
        ),
    )


# -- the inclusion checker -------------------------------------------------------------

JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_ANNOTATIONS = frozenset(
    {
        "title", "description", "examples", "$comment", "default", "deprecated",
        "readOnly", "writeOnly", "$schema", "contentEncoding", "contentMediaType",
        "contentSchema", "$defs", "definitions",
    }
)  # fmt: skip
# Keywords that apply subschemas to the instance itself (not to a part of it): what they
# evaluate counts for `unevaluated*`, and a `$ref` cycle through them never ends.
_APPLICATORS = frozenset(
    {"$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"}
)
_UNEVALUATED = frozenset({"unevaluatedProperties", "unevaluatedItems"})
# A schema with only these keywords is a bare reference to its target.
_REF_ONLY = _ANNOTATIONS | {"$ref"}
_UNDERSTOOD = frozenset(
    {
        "type", "enum", "const", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
        "multipleOf", "minLength", "maxLength", "pattern", "format", "items", "prefixItems",
        "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains",
        "unevaluatedItems", "properties", "required", "additionalProperties",
        "patternProperties", "propertyNames", "minProperties", "maxProperties",
        "dependentRequired", "dependentSchemas", "unevaluatedProperties", "$ref", "allOf",
        "anyOf", "oneOf", "not", "if", "then", "else",
    }
)  # fmt: skip
# Keywords whose meaning depends on a sibling: merging two schemas must not pair one
# schema's `if` with another's `then`, or `contains` with another's `minContains`.
_GROUPS = (frozenset({"if", "then", "else"}), frozenset({"contains", "minContains", "maxContains"}))
# Keywords holding one subschema, a map of them, or a list of them (others hold data).
_SCHEMA_VALUED = frozenset(
    {
        "items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "not",
        "contains", "if", "then", "else", "propertyNames",
    }
)  # fmt: skip
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
# At the params root, keywords a filled-in default could break (a listed call with a
# parameter added is no longer the listed call).
_FILL_BREAKERS = _APPLICATORS | {"maxProperties", "enum", "const"}
# Calls a params root listing them (`enum`/`const`) is expanded to, at most, before the
# checker falls back to judging the object schema without the list (wider, so sound).
_MAX_ROOT_CALLS = 1024
_STRING_LIMITS = (("minLength", "lower"), ("maxLength", "upper"))
_ARRAY_LIMITS = (("minItems", "lower"), ("maxItems", "upper"))
_OBJECT_LIMITS = (("minProperties", "lower"), ("maxProperties", "upper"))
_LIMIT_KEYWORDS = frozenset(
    {
        "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength",
        "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
    }
)  # fmt: skip
_NO_LOW = sys.maxsize
# Integers a float represents exactly: `multipleOf` with such a step is decided exactly
# by the validator (`instance % step`), for integer and float instances alike.
_EXACT_STEP = 2**53

Pointer = tuple[str | int, ...]


class _Node(NamedTuple):
    """A schema inside a contract, with where it sits (for paths and `$ref`s).

    `siblings` are the other branches of the `oneOf` this node is a branch of: a value
    of this branch is known not to match them. (A named tuple: checks create nodes by
    the ten thousand, and a tuple is the cheapest immutable record.)
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

    def true_at(self, *parts: str | int) -> _Node:
        """A schema accepting everything, said to sit at `parts` (which may not exist)."""
        return _Node(self.contract, (*self.ptr, *parts), True)


@dataclass
class _Issue:
    """Why `sub ⊆ sup` fails, worded as the edit old → new.

    `sup_at` and `sub_at` say where under each node the edit shows (None: not there).
    The path points where it shows in the new contract, else (something removed) where
    it showed in the old one.
    """

    sub_ptr: Pointer
    sup_ptr: Pointer
    rule: str
    message: str
    new_is_sup: bool
    sup_at: Pointer | None = ()
    sub_at: Pointer | None = None

    def to_violation(self, side: Side, direction: Direction, new: Any, old: Any) -> Incompatibility:
        new_ptr, new_at, old_ptr, old_at = (
            (self.sup_ptr, self.sup_at, self.sub_ptr, self.sub_at)
            if self.new_is_sup
            else (self.sub_ptr, self.sub_at, self.sup_ptr, self.sup_at)
        )
        message = f"{self.message}; {consequence(side, direction)}"
        if new_at is not None and _exists(new, (*new_ptr, *new_at)):
            path = (*new_ptr, *new_at)
        elif old_at is not None and _exists(old, (*old_ptr, *old_at)):
            path = (*old_ptr, *old_at)
            message += " (the path is in the old contract)"
        else:
            path = _existing(new, (*new_ptr, *(new_at or ())))
        return Incompatibility(
            side=side, direction=direction, path=json_pointer(path), rule=self.rule, message=message
        )


@dataclass(frozen=True)
class _Call:
    """A call a producer may send, as its decoder and as the other decoder validate it."""

    sent: Any
    seen: Any  # `sent` with the producer's decoder's defaults filled in
    filled: Any  # `sent` with the other decoder's defaults filled in

    def filled_by(self, validated: Any) -> list[str]:
        """The parameters a decoder filled in to get `validated`."""
        return sorted(set(validated) - set(self.sent)) if isinstance(self.sent, dict) else []

    @property
    def defaulted(self) -> bool:
        return bool(self.filled_by(self.seen) or self.filled_by(self.filled))


class _Memo:
    """What one check computes once: equalities of schema pairs and validators.

    Keyed by identity; each entry holds the schemas it is about, so they stay alive and
    no id in a key is reused by another object while the memo lives.
    """

    def __init__(self) -> None:
        self._equal: dict[tuple[int, int], tuple[Any, Any, bool]] = {}
        self._validators: dict[tuple[int, int], tuple[Any, Any, Any]] = {}
        self._assertions: dict[int, tuple[Any, frozenset[str]]] = {}
        # How often an equality was assumed (a pair met again while under comparison):
        # a result that leaned on one is not remembered.
        self.assumed = 0

    def equality(self, a: Any, b: Any) -> bool | None:
        # Equality is symmetric: (a, b) and (b, a) share an entry.
        id_a, id_b = id(a), id(b)
        known = self._equal.get((id_a, id_b) if id_a <= id_b else (id_b, id_a))
        return None if known is None else known[2]

    def remember_equality(self, a: Any, b: Any, equal: bool) -> None:
        id_a, id_b = id(a), id(b)
        key = (id_a, id_b) if id_a <= id_b else (id_b, id_a)
        self._equal[key] = (a, b, equal)

    def assertions(self, schema: dict[str, Any]) -> frozenset[str]:
        """The keywords of `schema` that are not annotations."""
        known = self._assertions.get(id(schema))
        if known is None:
            keys = frozenset(k for k in schema if k not in _ANNOTATIONS and not k.startswith("x-"))
            known = self._assertions[id(schema)] = (schema, keys)
        return known[1]

    def validator(self, node: _Node) -> Any:
        """The decoder's validator for `node` (compiled once per schema and contract)."""
        key = (id(node.schema), id(node.contract))
        known = self._validators.get(key)
        if known is None:
            known = (node.schema, node.contract, compile_schema(_bundle_node(node)))
            self._validators[key] = known
        return known[2]


@dataclass
class _Checker:
    sub_contract: TaskContract
    sup_contract: TaskContract
    memo: _Memo
    new_is_sup: bool
    # Top-level parameters whose default the `sup` decoder fills into calls that omit them.
    filled: dict[str, Any] = field(default_factory=dict)
    _index: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _low: int = _NO_LOW
    _done: dict[tuple[Any, ...], list[_Issue]] = field(default_factory=dict)
    # Keeps every schema named by a key in `_done` alive, so that no id is reused.
    _keep: list[Any] = field(default_factory=list)

    @property
    def sub_name(self) -> str:
        return "new" if not self.new_is_sup else "old"

    @property
    def sup_name(self) -> str:
        return "new" if self.new_is_sup else "old"

    def issue(
        self,
        a: _Node,
        b: _Node,
        rule: str,
        message: str,
        *at_b: str | int,
        at_a: Pointer | None = None,
    ) -> _Issue:
        """An issue of `a ⊆ b` showing at `at_b` under `b` and, if given, `at_a` under `a`."""
        return _Issue(a.ptr, b.ptr, rule, message, self.new_is_sup, at_b, at_a)

    def edit(self, added: str, removed: str) -> str:
        """The rule id or wording for what refuses: a constraint of the including schema
        that the other lacks was `added` in the new contract when the new one includes,
        else `removed` from it."""
        return added if self.new_is_sup else removed

    def old_new(self, a: _Node, b: _Node) -> tuple[_Node, _Node]:
        return (a, b) if self.new_is_sup else (b, a)

    # -- entry ---------------------------------------------------------------------

    def subset(self, a: _Node, b: _Node, *, root: bool = False) -> list[_Issue]:
        """Issues preventing `a ⊆ b`; empty when inclusion is proved."""
        a, b = _follow(a), _follow(b)
        if a.schema is False or _is_true(b.schema):
            return []
        if b.schema is False:
            message = self.edit(
                "the new schema here is false: it accepts nothing, the old one accepted values",
                "the old schema here was false (it accepted nothing); the new one accepts values",
            )
            rule = self.edit("schema-false", "schema-false-replaced")
            # Where the new schema accepts values in place of the old `false`.
            return [self.issue(a, b, rule, message, at_a=None if self.new_is_sup else ())]
        key = (root, id(a.schema), id(b.schema), *(id(s.schema) for s in a.siblings))
        if key in self._done:
            return self._done[key]
        depth = self._index.get(key)
        if depth is not None:
            # Under comparison further up: assumed to hold (coinduction). Whatever is
            # proved from here on leans on that assumption until it is settled.
            self._low = min(self._low, depth)
            return []
        if not (root and self.filled) and _equal(a, b, self.memo):
            return []
        depth = len(self._index)
        self._index[key] = depth
        outer_low, self._low = self._low, _NO_LOW
        try:
            issues = self._subset(a, b, root)
        finally:
            del self._index[key]
            low = self._low
            self._low = min(outer_low, low if low < depth else _NO_LOW)
        # A failure is a failure whatever was assumed; a success only when it leaned on
        # nothing still open below this pair.
        if issues or low >= depth:
            self._done[key] = issues
            self._keep.append((a, b))
        return issues

    def _subset(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        if a.schema is True:
            a = _Node(a.contract, a.ptr, {})
        # B = b1 and b2 and ...: A must be within each conjunct. Split apart, a conjunct
        # can only be stricter than in place (`unevaluated*` sees less), which is safe.
        conjuncts = _conjuncts(b, strict=True)
        if conjuncts is not None:
            return [issue for part in conjuncts for issue in self.subset(a, part, root=root)]
        # A = a1 and a2 and ...: within B if the merged whole is, else if any conjunct is.
        conjuncts = _conjuncts(a, strict=False)
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
        if _disjoint(a, excluded, self.memo):
            return []
        if "not" in a.schema and not self.subset(excluded, a.child("not")):
            return []  # the excluded set narrowed: what A excluded covers what B excludes
        message = self.edit(
            "`not` added or widened: the new schema excludes values the old one accepted",
            "`not` removed or narrowed: the new schema accepts values the old one excluded",
        )
        at_a = ("not",) if "not" in a.schema else None
        return [
            self.issue(a, b, self.edit("not-widened", "not-narrowed"), message, "not", at_a=at_a)
        ]

    def _union(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        keyword = "anyOf" if "anyOf" in b.schema else "oneOf"
        issues: list[_Issue] = []
        rest = _without(b, keyword)
        if rest is not None:
            issues.extend(self.subset(a, rest, root=root))
        options = [b.child(keyword, index) for index in range(len(b.schema[keyword]))]
        # An option whose tag clashes with `a`'s includes `a` only if `a` is empty:
        # passed over (at worst a refusal too many, never one too few).
        open_options = [i for i, option in enumerate(options) if not _tags_clash(a, option)]
        index = self._fitting_option(a, options, open_options, root)
        if index is None:
            candidates = open_options or list(range(len(options)))
            attempts = {i: self.subset(a, options[i], root=root) for i in candidates}
            best = min(candidates, key=lambda i: len(attempts[i]))
            return [*issues, self._no_branch(a, b, keyword, best), *attempts[best]]
        if keyword == "oneOf":
            for other, option in enumerate(options):
                if other != index and not _disjoint(a, option, self.memo, excluded=a.siblings):
                    issues.append(self._overlap(a, b, index, other))
        return issues

    def _fitting_option(
        self, a: _Node, options: Sequence[_Node], candidates: Sequence[int], root: bool
    ) -> int | None:
        """The index of one of the `candidates` options that includes `a`, or None. An
        equal one is found without comparing the others."""
        for index in candidates:
            # (At the params root a filled-in default can break an equal option.)
            if not (root and self.filled) and _equal(a, options[index], self.memo):
                return index
        for index in candidates:
            if not self.subset(a, options[index], root=root):
                return index
        return None

    def _no_branch(self, a: _Node, b: _Node, keyword: str, best: int) -> _Issue:
        """No branch of `b`'s union includes `a`."""
        if self.new_is_sup:
            message = (
                f"no {keyword} branch of the new schema accepts everything the old one did "
                f"(closest: branch {best})"
            )
            return self.issue(a, b, "union-branch-missing", message, keyword)
        # `a` is new: a branch of a new union (most often one just added), or all of it.
        branch = len(a.ptr) >= 2 and a.ptr[-2] in ("anyOf", "oneOf")
        what = f"{a.ptr[-2]} branch {a.ptr[-1]} of the new schema" if branch else "the new schema"
        message = (
            f"{what} accepts values that no {keyword} branch of the old schema accepted "
            f"(closest: branch {best})"
        )
        rule = "union-branch-added" if branch else "union-widened"
        return self.issue(a, b, rule, message, keyword, at_a=())

    def _overlap(self, a: _Node, b: _Node, index: int, other: int) -> _Issue:
        """Values of `a` may match two branches of `b`'s oneOf, which refuses them."""
        if self.new_is_sup:
            message = (
                f"oneOf branch {other} of the new schema may match values of the old one that "
                f"branch {index} matches, and oneOf refuses a value matching two branches"
            )
            return self.issue(a, b, "one-of-branch-overlaps", message, "oneOf", other)
        message = (
            f"the new schema accepts values that may match both oneOf branches {index} and "
            f"{other} of the old one, which refused them for matching two"
        )
        return self.issue(a, b, "one-of-overlap-accepted", message, "oneOf", at_a=())

    # -- one schema without applicators ----------------------------------------------

    def _simple(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        issues: list[_Issue] = []
        values = _finite_values(a.schema)
        if values is not None:
            return self._values(a, b, values)
        if "enum" in b.schema or "const" in b.schema:
            keyword = "enum" if "enum" in b.schema else "const"
            listed = _show(b.schema[keyword])
            message = self.edit(
                f"{keyword} {listed} added: the old schema allowed other values too",
                f"{keyword} {listed} removed: the new schema allows other values too",
            )
            rule = self.edit(f"{keyword}-added", f"{keyword}-removed")
            return [self.issue(a, b, rule, message, keyword)]
        types_a, types_b = _types(a.schema), _types(b.schema)
        lost = sorted(t for t in types_a if not _covers(types_b, t))
        if lost:
            issues.append(self._type_changed(a, b, types_a, types_b, lost))
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
        if live:
            issues.extend(self._conditional(a, b))
        issues.extend(self._unknown(a, b))
        return issues

    def _type_changed(
        self, a: _Node, b: _Node, types_a: set[str], types_b: set[str], lost: list[str]
    ) -> _Issue:
        """Values of types in `lost` pass `a` and fail `b`'s `type`."""
        # Some values keep a type (number → integer keeps the integers): narrowed, or,
        # the other way round, widened.
        kept = any(
            _covers(types_b, t) or (_covers({t}, "integer") and "integer" in types_b)
            for t in types_a
        )
        old, new = (types_a, types_b) if self.new_is_sup else (types_b, types_a)
        change = f"type {_show_types(old)} became {_show_types(new)}"
        shown = ", ".join(lost)
        message = self.edit(
            f"{change}: {shown} no longer accepted", f"{change}: {shown} now accepted"
        )
        rule = self.edit("type-narrowed", "type-widened") if kept else "type-changed"
        at_a = ("type",) if "type" in a.schema else None
        return self.issue(a, b, rule, message, "type", at_a=at_a)

    def calls(self, a: _Node, b: _Node, calls: Sequence[_Call]) -> list[_Issue]:
        """Issues of the listed calls `a` accepts (params root) under `b`'s decoder."""
        validator = self.memo.validator(b)
        refused = [call for call in calls if not _accepts(validator, call.filled)]
        as_sent = [call.sent for call in refused if not call.defaulted]
        issues = self._values(a, b, as_sent) if as_sent else []
        defaulted = [call for call in refused if call.defaulted]
        if defaulted:
            issues.append(self._refused_call(a, b, defaulted[0]))
        return issues

    def _refused_call(self, a: _Node, b: _Node, call: _Call) -> _Issue:
        """A listed call that defaults are filled into, refused by `b`'s decoder."""
        by_sub, by_sup = call.filled_by(call.seen), call.filled_by(call.filled)
        unfilled = [name for name in by_sub if name not in by_sup]
        if unfilled:
            rule = "default-removed" if self.new_is_sup else "default-added"
        else:
            rule = "default-refused"
        name = (by_sup or by_sub)[0]
        accepted = f"once its decoder fills in {_names(by_sub)}" if by_sub else "as sent"
        refused = f" once its decoder fills in {_names(by_sup)}" if by_sup else ""
        message = (
            f"the call {_show(call.sent)} is accepted by the {self.sub_name} contract "
            f"{accepted}, and refused by the {self.sup_name} one{refused}"
        )
        at = ("properties", name, "default")
        return self.issue(a, b, rule, message, *at, at_a=at)

    def _values(self, a: _Node, b: _Node, values: list[Any]) -> list[_Issue]:
        validator = self.memo.validator(b)
        refused = [value for value in values if not _accepts(validator, value)]
        if not refused:
            return []
        keyword = next((k for k in ("const", "enum") if k in a.schema), "type")
        failed = _failing_keyword(validator, refused[0])
        rule = self._value_rule(a, b, failed, keyword, partly=len(refused) < len(values))
        because = f" ({failed})" if failed else ""
        message = (
            f"{_show(refused)} accepted by the {self.sub_name} schema, refused by the "
            f"{self.sup_name} one{because}"
        )
        at_b = (failed,) if failed in b.schema else (keyword,)
        # Where the new schema still has the keyword, the edit shows there.
        at_a = (failed,) if failed in a.schema else (keyword,) if keyword in a.schema else None
        if rule.endswith("-removed"):
            at_a = None
        return [self.issue(a, b, rule, message, *at_b, at_a=at_a)]

    def _value_rule(self, a: _Node, b: _Node, failed: str, keyword: str, *, partly: bool) -> str:
        """The rule for values of `a` (listed) that `b` refuses at its keyword `failed`."""
        in_a = failed in a.schema
        if failed == "type" and "type" in b.schema:
            return self.edit("type-narrowed", "type-widened") if partly else "type-changed"
        if failed in _LIMIT_KEYWORDS:
            if in_a:
                return self.edit("limit-tightened", "limit-loosened")
            return self.edit("limit-added", "limit-removed")
        if failed == "multipleOf":
            return (
                "multiple-of-changed"
                if in_a
                else self.edit("multiple-of-added", "multiple-of-removed")
            )
        if failed in ("pattern", "format"):
            return f"{failed}-changed" if in_a else f"{failed}-{self.edit('added', 'removed')}"
        if failed == "uniqueItems":
            return self.edit("unique-items-added", "unique-items-removed")
        if failed == "const":
            return "const-changed" if in_a else self.edit("const-added", "const-removed")
        if failed == "enum" and "enum" not in a.schema:
            return self.edit("enum-added", "enum-removed")
        if failed != "enum" and keyword == "const":
            return "const-changed"
        return self.edit("enum-narrowed", "enum-widened")

    def _numbers(self, a: _Node, b: _Node, live: set[str]) -> list[_Issue]:
        issues = []
        for keywords, side in (
            (("minimum", "exclusiveMinimum"), "lower"),
            (("maximum", "exclusiveMaximum"), "upper"),
        ):
            bound_a, bound_b = _bound(a.schema, *keywords), _bound(b.schema, *keywords)
            if bound_b is None or (bound_a is not None and _within(bound_a, bound_b, side)):
                continue
            keyword_b = keywords[1] if bound_b[1] else keywords[0]
            if bound_a is None:
                issues.append(self._limit_changed(a, b, None, None, keyword_b, bound_b[0]))
            else:
                keyword_a = keywords[1] if bound_a[1] else keywords[0]
                issues.append(
                    self._limit_changed(a, b, keyword_a, bound_a[0], keyword_b, bound_b[0])
                )
        step_b = b.get("multipleOf")
        if step_b is not None:
            step_a = a.get("multipleOf")
            if not _steps_within(step_a, step_b, live):
                issues.append(self._step_changed(a, b, step_a, step_b))
        return issues

    def _limit_changed(
        self,
        a: _Node,
        b: _Node,
        keyword_a: str | None,
        limit_a: Any,
        keyword_b: str,
        limit_b: Any,
    ) -> _Issue:
        """`b`'s limit is missing from `a` (`keyword_a` None) or tighter than `a`'s."""
        if keyword_a is None:
            rule = self.edit("limit-added", "limit-removed")
            message = self.edit(
                f"{keyword_b} {_num(limit_b)} added", f"{keyword_b} removed (was {_num(limit_b)})"
            )
            return self.issue(a, b, rule, message, keyword_b)
        if self.new_is_sup:
            rule = "limit-tightened"
            message = (
                f"{keyword_b} tightened to {_num(limit_b)} ({_was(keyword_a, limit_a, keyword_b)})"
            )
        else:
            rule = "limit-loosened"
            message = (
                f"{keyword_a} loosened to {_num(limit_a)} ({_was(keyword_b, limit_b, keyword_a)})"
            )
        return self.issue(a, b, rule, message, keyword_b, at_a=(keyword_a,))

    def _step_changed(self, a: _Node, b: _Node, step_a: Any, step_b: Any) -> _Issue:
        """`b`'s `multipleOf` is missing from `a`, or not proved to hold where `a`'s does."""
        if step_a is None:
            rule = self.edit("multiple-of-added", "multiple-of-removed")
            message = self.edit(
                f"multipleOf {_num(step_b)} added", f"multipleOf removed (was {_num(step_b)})"
            )
            return self.issue(a, b, rule, message, "multipleOf")
        old, new = (step_a, step_b) if self.new_is_sup else (step_b, step_a)
        # Every multiple of the sub step must be one of the sup step.
        relation = self.edit("a divisor of", "a multiple of")
        message = (
            f"multipleOf changed from {_num(old)} to {_num(new)}, which is not proved {relation} it"
        )
        return self.issue(a, b, "multiple-of-changed", message, "multipleOf", at_a=("multipleOf",))

    def _limits(
        self,
        a: _Node,
        b: _Node,
        limits: Sequence[tuple[str, str]],
        own: Mapping[str, Any] | None = None,
    ) -> list[_Issue]:
        """Limits of `b` that `a`'s are not within; `own`: `a`'s limits where they are
        tighter than its keywords say."""
        issues = []
        for keyword, side in limits:
            limit_b = b.get(keyword)
            if limit_b is None:
                continue
            limit_a = (own or {}).get(keyword, a.get(keyword))
            if limit_a is not None and _within((limit_a, False), (limit_b, False), side):
                continue
            keyword_a = None if limit_a is None else keyword
            issues.append(self._limit_changed(a, b, keyword_a, limit_a, keyword, limit_b))
        return issues

    def _same_or_absent(self, a: _Node, b: _Node, keywords: Iterable[str]) -> list[_Issue]:
        issues = []
        for keyword in keywords:
            if keyword in b.schema and not (
                keyword in a.schema and _json_equal(a.schema[keyword], b.schema[keyword])
            ):
                issues.append(self._assertion_changed(a, b, keyword))
        return issues

    def _assertion_changed(self, a: _Node, b: _Node, keyword: str) -> _Issue:
        """`b` asserts `keyword` (`pattern`, `format`) that `a` lacks or has otherwise."""
        value_b = b.schema[keyword]
        if keyword not in a.schema:
            rule = f"{keyword}-{self.edit('added', 'removed')}"
            message = self.edit(
                f"{keyword} {value_b!r} added: values the old schema accepted may fail it",
                f"{keyword} {value_b!r} removed: the new schema accepts values that fail it",
            )
            return self.issue(a, b, rule, message, keyword)
        old, new = self.old_new(a, b)
        message = (
            f"{keyword} changed from {old.schema[keyword]!r} to {new.schema[keyword]!r}: values "
            f"the {self.sub_name} schema accepts may fail the {self.sup_name} one"
        )
        return self.issue(a, b, f"{keyword}-changed", message, keyword, at_a=(keyword,))

    def _arrays(self, a: _Node, b: _Node) -> list[_Issue]:
        issues = self._limits(a, b, _ARRAY_LIMITS, own={"maxItems": _max_items(a)})
        if b.get("uniqueItems") is True and a.get("uniqueItems") is not True:
            message = self.edit(
                "uniqueItems added: arrays with repeated items are refused",
                "uniqueItems removed: arrays with repeated items are accepted",
            )
            rule = self.edit("unique-items-added", "unique-items-removed")
            at_a = ("uniqueItems",) if "uniqueItems" in a.schema else None
            issues.append(self.issue(a, b, rule, message, "uniqueItems", at_a=at_a))
        prefix_a, prefix_b = a.get("prefixItems", []), b.get("prefixItems", [])
        max_items = a.get("maxItems")
        for index in range(max(len(prefix_a), len(prefix_b))):
            if max_items is not None and index >= max_items:
                break
            item_a = (
                a.child("prefixItems", index) if index < len(prefix_a) else _items(a, strict=False)
            )
            item_b = (
                b.child("prefixItems", index) if index < len(prefix_b) else _items(b, strict=True)
            )
            if item_a.schema is False:
                break
            found = self.subset(item_a, item_b)
            if found and index >= len(prefix_a) and _is_true(item_a.schema):
                issues.append(self._open_item(a, b, index))
            else:
                issues.extend(found)
        if max_items is None or max_items > max(len(prefix_a), len(prefix_b)):
            issues.extend(self.subset(_items(a, strict=False), _items(b, strict=True)))
        issues.extend(self._contains(a, b))
        return issues

    def _open_item(self, a: _Node, b: _Node, index: int) -> _Issue:
        """Item `index` of `b` has a schema where `a` is an open tuple (any value)."""
        if self.new_is_sup:
            message = (
                f"item {index} now has a schema, but the old tuple was open: any value "
                "could sit there"
            )
            return self.issue(a, b, "tuple-item-added-to-open-tuple", message, "prefixItems", index)
        message = (
            f"item {index} had a schema in the old tuple; the new one is open there and "
            "accepts any value"
        )
        return self.issue(a, b, "tuple-item-removed-from-open-tuple", message, "prefixItems", index)

    def _contains(self, a: _Node, b: _Node) -> list[_Issue]:
        if "contains" not in b.schema:
            return []
        min_b, max_b = b.get("minContains", 1), b.get("maxContains")
        if min_b == 0 and max_b is None:
            return []  # always satisfied
        if "contains" in a.schema:
            min_a, max_a = a.get("minContains", 1), a.get("maxContains")
            if max_b is None:
                # At least min_a items match a's `contains`, hence b's.
                if min_a >= min_b and not self.subset(a.child("contains"), b.child("contains")):
                    return []
            elif (
                # At most max_a items match the same `contains`.
                _equal(a.child("contains"), b.child("contains"), self.memo)
                and min_a >= min_b
                and max_a is not None
                and max_a <= max_b
            ):
                return []
        counts = f"{min_b} to {max_b if max_b is not None else 'any number'}"
        message = self.edit(
            f"`contains` added or narrowed: the new schema requires items matching it "
            f"({counts}) that old arrays are not proved to have",
            f"`contains` removed or widened: the old schema required items matching it "
            f"({counts}) that new arrays are not proved to have",
        )
        at_a = ("contains",) if "contains" in a.schema else None
        return [self.issue(a, b, "contains-changed", message, "contains", at_a=at_a)]

    def _objects(self, a: _Node, b: _Node, root: bool) -> list[_Issue]:
        issues = self._limits(a, b, _OBJECT_LIMITS)
        filled = self.filled if root else {}
        props_a, props_b = a.get("properties", {}), b.get("properties", {})
        required_a, required_b = set(a.get("required", [])), b.get("required", [])
        for index, name in enumerate(required_b):
            if name not in required_a and name not in filled:
                issues.append(self._required(a, b, index, name, root))
        issues.extend(self._patterns(a, b))
        for name in dict.fromkeys([*props_a, *props_b]):
            issues.extend(self._property(a, b, name, filled))
        extra_a, extra_b = _additional(a, strict=False), _additional(b, strict=True)
        if extra_b is not None and (extra_a is None or extra_a.schema is not False):
            found = self.subset(extra_a or a.true_at("additionalProperties"), extra_b)
            if found and extra_b.schema is False:
                message = self.edit(
                    "the new object refuses properties it does not declare; the old one "
                    "accepted them",
                    "the new object accepts properties it does not declare; the old one "
                    "refused them",
                )
                at_a = None if extra_a is None else (extra_a.ptr[-1],)
                rule = self.edit("object-closed", "object-opened")
                issues.append(self.issue(a, b, rule, message, extra_b.ptr[-1], at_a=at_a))
            else:
                issues.extend(found)
        issues.extend(self._property_names(a, b))
        for key, needed in b.get("dependentRequired", {}).items():
            if not set(needed) <= set(a.get("dependentRequired", {}).get(key, [])):
                message = self.edit(
                    f"dependency added: when {key!r} is present {_show(needed)} must be too",
                    f"dependency removed: the old schema requires {_show(needed)} when "
                    f"{key!r} is present, the new one does not",
                )
                issues.append(self._dependency(a, b, "dependentRequired", key, message))
        for key in b.get("dependentSchemas", {}):
            target = b.child("dependentSchemas", key)
            if key in a.get("dependentSchemas", {}):
                found = self.subset(a.child("dependentSchemas", key), target)
                if not found:
                    continue
            # Without a matching dependency in A, all of A must pass it.
            whole = self.subset(a, target)
            if whole:
                message = self.edit(
                    f"dependency added: when {key!r} is present the object must also match a "
                    "schema the old one did not require",
                    f"dependency removed: when {key!r} is present the old schema also required "
                    "a schema the new one does not",
                )
                issues.append(self._dependency(a, b, "dependentSchemas", key, message))
        return issues

    def _required(self, a: _Node, b: _Node, index: int, name: str, root: bool) -> _Issue:
        """`b` requires `name`, which `a`'s documents may lack."""
        if self.new_is_sup:
            fill = " (with no default to fill it in)" if root else ""
            message = f"{name!r} is now required{fill}; old documents may lack it"
            return self.issue(a, b, "property-made-required", message, "required", index)
        if root:
            message = (
                f"{name!r} may now be omitted (no longer required, or given a default the new "
                "decoder fills in); the old schema requires it, with no default to fill it in"
            )
        else:
            message = f"{name!r} is no longer required; the old schema requires it"
        return self.issue(a, b, "property-made-optional", message, "required", index)

    def _dependency(self, a: _Node, b: _Node, keyword: str, key: str, message: str) -> _Issue:
        at_a = (keyword, key) if key in a.get(keyword, {}) else None
        rule = self.edit("dependency-added", "dependency-removed")
        return self.issue(a, b, rule, message, keyword, key, at_a=at_a)

    def _patterns(self, a: _Node, b: _Node) -> list[_Issue]:
        """Names matched by `patternProperties` (regex overlap is never computed: a new
        pattern must accept what every old pattern and the old `additionalProperties` did)."""
        patterns_a, patterns_b = a.get("patternProperties", {}), b.get("patternProperties", {})
        issues: list[_Issue] = []
        for pattern in patterns_b:
            target = b.child("patternProperties", pattern)
            if pattern in patterns_a:
                issues.extend(self.subset(a.child("patternProperties", pattern), target))
                continue
            covering = [a.child("patternProperties", other) for other in patterns_a]
            extra_a = _additional(a, strict=False)
            if extra_a is None or extra_a.schema is not False:
                covering.append(extra_a or a.true_at("additionalProperties"))
            if any(self.subset(node, target) for node in covering):
                message = self.edit(
                    f"pattern {pattern!r} added: names it matches may carry values the old "
                    "schema accepted and it refuses (regex overlap is not decided)",
                    f"pattern {pattern!r} removed: names it matched may now carry values it "
                    "refused (regex overlap is not decided)",
                )
                at = ("patternProperties", pattern)
                issues.append(self.issue(a, b, "pattern-properties-changed", message, *at))
        extra_b = _additional(b, strict=True)
        for pattern in patterns_a:
            if pattern in patterns_b or extra_b is None:
                continue
            if self.subset(a.child("patternProperties", pattern), extra_b):
                issues.append(self._pattern_uncovered(a, b, pattern, extra_b))
        return issues

    def _pattern_uncovered(self, a: _Node, b: _Node, pattern: str, extra_b: _Node) -> _Issue:
        """Names `a` gives to `pattern` fall under `b`'s additional properties schema."""
        extra = extra_b.ptr[-1]
        message = self.edit(
            f"pattern {pattern!r} removed: names it matched now fall under {extra}, which "
            "refuses values the old schema accepted",
            f"pattern {pattern!r} added: names it matches fell under the old {extra}, which "
            "refuses values it accepts",
        )
        at = ("patternProperties", pattern)
        # Where the pattern is (old, removed; or new, added), not the keyword it fell under.
        return _Issue(
            a.ptr, b.ptr, "pattern-properties-changed", message, self.new_is_sup, None, at
        )

    def _property(self, a: _Node, b: _Node, name: str, filled: Mapping[str, Any]) -> list[_Issue]:
        issues: list[_Issue] = []
        targets = _schemas_for(b, name, strict=True)
        if name in filled:
            # Calls that omit `name` get the default: it must pass every schema for `name`.
            default = filled[name]
            refused = not all(_accepts(self.memo.validator(target), default) for target in targets)
            if "propertyNames" in b.schema:
                names = self.memo.validator(b.child("propertyNames"))
                refused = refused or not _accepts(names, name)
            if refused:
                message = (
                    f"the default {_show(default)} of {name!r}, which the {self.sup_name} "
                    f"decoder fills into calls that omit it, is refused by the "
                    f"{self.sup_name} schema"
                )
                at = ("properties", name, "default")
                issues.append(self.issue(a, b, "default-refused", message, *at))
        in_a = _schemas_for(a, name, strict=False)
        if any(node.schema is False for node in in_a):
            return issues  # A never carries `name`
        declared_a = name in a.get("properties", {})
        for target in targets:
            attempts = [self.subset(node, target) for node in in_a]
            found = attempts[0] if all(attempts) else []
            if not found:
                continue
            if not declared_a and target.ptr[-2:] == ("properties", name):
                issues.append(self._declared_where_open(a, b, name))
            elif target.schema is False and target.ptr[-2:] != ("properties", name):
                issues.append(self._undeclared_where_closed(a, b, name, declared_a))
            else:
                issues.extend(found)
        return issues

    def _declared_where_open(self, a: _Node, b: _Node, name: str) -> _Issue:
        """`b` declares `name`, which `a`'s open object accepted with any value."""
        at = ("properties", name)
        if self.new_is_sup:
            message = (
                f"{name!r} is declared now, but the old object was open: documents may "
                f"already carry {name!r} with values its new schema refuses"
            )
            return self.issue(a, b, "property-added-to-open-object", message, *at)
        message = (
            f"{name!r} is no longer declared, and the new object is open: new documents may "
            f"carry {name!r} with values its old schema refuses"
        )
        return self.issue(a, b, "property-removed-from-open-object", message, *at)

    def _undeclared_where_closed(self, a: _Node, b: _Node, name: str, declared_a: bool) -> _Issue:
        """`a` accepts `name`; `b`'s object is closed and does not declare it."""
        at_a = ("properties", name) if declared_a else None
        if self.new_is_sup:
            message = (
                f"{name!r} is no longer declared, and the new object is closed: old documents "
                f"carrying {name!r} are refused"
            )
            rule = "property-removed-from-closed-object"
        else:
            message = (
                f"{name!r} is declared now, but the old object is closed: it refuses documents "
                f"carrying {name!r}"
            )
            rule = "property-added-to-closed-object"
        return _Issue(a.ptr, b.ptr, rule, message, self.new_is_sup, None, at_a)

    def _property_names(self, a: _Node, b: _Node) -> list[_Issue]:
        if "propertyNames" not in b.schema:
            return []
        if "propertyNames" not in a.schema:
            message = self.edit(
                "propertyNames added: names the old schema accepted may be refused",
                "propertyNames removed: the new schema accepts names the old one refused",
            )
            rule = self.edit("property-names-added", "property-names-removed")
            return [self.issue(a, b, rule, message, "propertyNames")]
        return self.subset(a.child("propertyNames"), b.child("propertyNames"))

    def _conditional(self, a: _Node, b: _Node) -> list[_Issue]:
        """`if`/`then`/`else`: with the same `if`, `then` and `else` compare pairwise;
        otherwise all of A must pass B's `then` and `else`."""
        if "if" not in b.schema:
            return []
        same_if = "if" in a.schema and _equal(a.child("if"), b.child("if"), self.memo)
        issues: list[_Issue] = []
        pairwise: list[_Issue] = []
        for keyword in ("then", "else"):
            if keyword not in b.schema:
                continue
            target = b.child(keyword)
            if same_if:
                mine = a.child(keyword) if keyword in a.schema else a.true_at(keyword)
                pairwise = self.subset(mine, target)
                if not pairwise:
                    continue
            whole = self.subset(a, target)
            if whole:
                issues.extend(pairwise if same_if else whole)
        return issues

    def _unknown(self, a: _Node, b: _Node) -> list[_Issue]:
        issues = []
        for keyword, value in b.schema.items():
            if keyword in _UNDERSTOOD or keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            if keyword in a.schema and _json_equal(a.schema[keyword], value):
                continue
            edit = self.edit("added or changed", "removed or changed")
            message = (
                f"{keyword!r} is not understood by the checker; it was {edit}, so "
                "compatibility cannot be proved"
            )
            at_a = (keyword,) if keyword in a.schema else None
            issues.append(self.issue(a, b, "undecidable-keyword", message, keyword, at_a=at_a))
        return issues


_MISSING: Any = object()


# -- schema helpers -----------------------------------------------------------------------


def _document(contract: TaskContract) -> dict[str, Any]:
    return {"params": contract.params, "returns": contract.returns, "$defs": contract.defs}


def _exists(document: Any, ptr: Pointer) -> bool:
    return len(_existing(document, ptr)) == len(ptr)


def _existing(document: Any, ptr: Pointer) -> Pointer:
    """The longest prefix of `ptr` that exists in `document`."""
    node = document
    for length, part in enumerate(ptr):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            continue
        if not (isinstance(node, dict) and part in node):
            return ptr[:length]
        node = node[part]
    return ptr


def _follow(node: _Node) -> _Node:
    """Resolve a schema that is only a `$ref` (plus annotations) to its target."""
    schema = node.schema
    if type(schema) is not dict or "$ref" not in schema:
        return node  # most schemas: no reference to follow
    seen: set[int] = set()
    while (
        isinstance(node.schema, dict)
        and "$ref" in node.schema
        and _REF_ONLY.issuperset(node.schema)
    ):
        if id(node.schema) in seen:
            # A `$ref` cycle: the validator never ends on it (reported as `ref-cycle`
            # where it must accept); where it is the subset, assuming anything is safe.
            return _Node(node.contract, node.ptr, True)
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
    # (issuperset walks the keys without building a set: this runs for every pair.)
    return schema is True or (isinstance(schema, dict) and _ANNOTATIONS.issuperset(schema))


def _conjuncts(node: _Node, *, strict: bool) -> list[_Node] | None:
    """`allOf` members, a `$ref` with siblings, and the siblings, as separate schemas.

    Apart, the siblings' `unevaluated*` no longer see what the other parts evaluate:
    stricter than in place. That is kept where a stricter schema is safe (`strict`, the
    side that must accept) and dropped where only a wider one is.
    """
    schema = node.schema
    if not isinstance(schema, dict) or not ({"allOf", "$ref"} & set(schema)):
        return None
    parts: list[_Node] = []
    if "$ref" in schema:
        parts.append(_target(node))
    parts.extend(node.child("allOf", index) for index in range(len(schema.get("allOf", []))))
    dropped = {"allOf", "$ref"} if strict else {"allOf", "$ref", *_UNEVALUATED}
    rest = {key: value for key, value in schema.items() if key not in dropped}
    if not _ANNOTATIONS.issuperset(rest):
        parts.append(_Node(node.contract, node.ptr, rest))
    return parts


def _merge(parts: Sequence[_Node]) -> _Node | None:
    """One schema containing the conjunction (equal to it or wider), or None.

    Merging never pairs keywords that depend on each other across parts, and drops
    `unevaluated*` (which would see evaluations they did not see in place).
    """
    merged: dict[str, Any] = {}
    owners: dict[str, int] = {}
    nontrivial = 0
    for number, part in enumerate(parts):
        resolved = _follow(part)
        schema = resolved.schema
        if schema is True:
            continue
        if schema is False:
            return None
        nontrivial += 1
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword in merged and not _json_equal(merged[keyword], value):
                return None
            merged[keyword] = value
            owners.setdefault(keyword, number)
    if {"allOf", "$ref"} & set(merged):
        return None
    for group in _GROUPS:
        if len({owners[keyword] for keyword in group & set(owners)}) > 1:
            return None
    if nontrivial > 1:
        merged = {key: value for key, value in merged.items() if key not in _UNEVALUATED}
    return _Node(parts[0].contract, parts[0].ptr, merged)


def _branches(node: _Node) -> list[_Node] | None:
    """The alternatives of a schema with `anyOf`/`oneOf`, each joined with the siblings
    (or, where they cannot be joined, alone: wider, so still a cover)."""
    schema = node.schema
    if not isinstance(schema, dict):
        return None
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
            chosen = chosen._replace(
                siblings=tuple(node.child(keyword, i) for i in others if i != index)
            )
        branches.append(chosen)
    return branches


def _without(node: _Node, keyword: str) -> _Node | None:
    rest = {key: value for key, value in node.schema.items() if key != keyword}
    return None if _ANNOTATIONS.issuperset(rest) else _Node(node.contract, node.ptr, rest)


def _items(node: _Node, *, strict: bool) -> _Node:
    """The schema for items after `prefixItems`.

    `unevaluatedItems` stands in for a missing `items` when nothing else evaluates items,
    or, on the side that must accept (`strict`), always (it then constrains more).
    """
    if "items" in node.schema:
        return node.child("items")
    if "unevaluatedItems" in node.schema and (
        strict or not (_APPLICATORS | {"contains"}) & set(node.schema)
    ):
        return node.child("unevaluatedItems")
    return node.true_at("items")


def _additional(node: _Node, *, strict: bool) -> _Node | None:
    """The schema for undeclared properties, or None when any value is allowed.

    `unevaluatedProperties` counts as one when no applicator evaluates properties, or, on
    the side that must accept (`strict`), always (it then constrains more).
    """
    if "additionalProperties" in node.schema:
        return node.child("additionalProperties")
    if "unevaluatedProperties" in node.schema and (strict or not _APPLICATORS & set(node.schema)):
        return node.child("unevaluatedProperties")
    return None


def _schemas_for(node: _Node, name: str, *, strict: bool) -> list[_Node]:
    """Every schema a property `name` must pass here (`true` when nothing constrains it)."""
    found = []
    if name in node.get("properties", {}):
        found.append(node.child("properties", name))
    for pattern in node.get("patternProperties", {}):
        if re.search(pattern, name):
            found.append(node.child("patternProperties", pattern))
    if not found:
        extra = _additional(node, strict=strict)
        found.append(extra or node.true_at("additionalProperties"))
    return found


def _max_items(node: _Node) -> Any:
    """The most items an array can have here: `maxItems`, or the length of a closed tuple."""
    declared = node.get("maxItems")
    if _items(node, strict=False).schema is not False:
        return declared
    length = len(node.get("prefixItems", []))
    return length if declared is None else min(declared, length)


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


def _accepts(validator: Any, value: Any) -> bool:
    """Whether the decoder's validator accepts `value` (a schema it recurses on forever
    accepts nothing)."""
    try:
        return bool(validator.is_valid(value))
    except RecursionError:
        return False


def _failing_keyword(validator: Any, value: Any) -> str:
    try:
        errors = list(validator.iter_errors(value))
    except RecursionError:
        return ""
    for error in errors:
        if error.relative_schema_path:
            return str(error.relative_schema_path[0])
    return ""


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


def _exact_step(step: Any) -> bool:
    return isinstance(step, int) and not isinstance(step, bool) and 0 < step <= _EXACT_STEP


def _steps_within(step_a: Any, step_b: Any, live: set[str]) -> bool:
    """Whether every number the validator accepts under `multipleOf: step_a` (or any
    number, when None) it also accepts under `multipleOf: step_b`.

    A fractional step is checked by the validator in floating point (`x / step`), which
    is not exact: only the identical step is then proved.
    """
    if step_a is not None and _json_equal(step_a, step_b) and type(step_a) is type(step_b):
        return True
    if not _exact_step(step_b):
        return False
    if step_b == 1 and live <= {"integer"}:
        return True
    return _exact_step(step_a) and step_a % step_b == 0


def _json_equal(x: Any, y: Any) -> bool:
    """Equality of JSON values as JSON Schema sees it: 1 == 1.0, but true != 1."""
    if type(x) is str or type(y) is str:  # the most common by far: names, types, tags
        return type(x) is type(y) and bool(x == y)
    if isinstance(x, bool) or isinstance(y, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    if isinstance(x, int | float) and isinstance(y, int | float):
        return x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_json_equal(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_json_equal(i, j) for i, j in zip(x, y, strict=True))
    return type(x) is type(y) and bool(x == y)


def _tags_clash(a: _Node, b: _Node) -> bool:
    """Whether a property both schemas require is listed (`const`/`enum`) on both sides
    with no value in common: then no document is valid under both. (`required` binds
    objects only: one of them must accept nothing else.)"""
    a, b = _follow(a), _follow(b)
    schema_a, schema_b = a.schema, b.schema
    if not (isinstance(schema_a, dict) and isinstance(schema_b, dict)):
        return False
    required_a, required_b = schema_a.get("required"), schema_b.get("required")
    properties_a, properties_b = schema_a.get("properties"), schema_b.get("properties")
    if not (required_a and required_b and properties_a and properties_b):
        return False
    if {"object"} not in (_types(schema_a), _types(schema_b)):
        return False
    for name in required_a:
        if name not in required_b:
            continue
        values_a = _finite_values(properties_a.get(name))
        values_b = _finite_values(properties_b.get(name)) if values_a is not None else None
        if (
            values_a is not None
            and values_b is not None
            and not any(_json_equal(x, y) for x in values_a for y in values_b)
        ):
            return True
    return False


def _disjoint(
    a: _Node,
    b: _Node,
    memo: _Memo,
    excluded: Sequence[_Node] = (),
    seen: frozenset[tuple[int, int]] = frozenset(),
) -> bool:
    """Whether no document can be valid under both (False when it cannot be proved)."""
    a, b = _follow(a), _follow(b)
    if a.schema is False or b.schema is False:
        return True
    if any(_equal(b, other, memo) for other in excluded):
        return True
    if a.schema is True or b.schema is True:
        return False
    if _tags_clash(a, b):
        return True  # a document of both would need a tag value both lists lack
    key = (id(a.schema), id(b.schema))
    if key in seen:
        return False  # a cycle proves nothing
    seen = seen | {key}
    for x, y in ((a, b), (b, a)):
        branches = _branches(x)
        if branches is not None:
            return all(_disjoint(branch, y, memo, seen=seen) for branch in branches)
        values = _finite_values(x.schema)
        if values is not None:
            listed = _finite_values(y.schema)
            if listed is not None and not any(_json_equal(v, w) for v in values for w in listed):
                return True  # `y` accepts none but its own listed values (no validator needed)
            validator = memo.validator(y)
            return not any(_accepts(validator, value) for value in values)
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
            in_y = _schemas_for(y, name, strict=False)
            if name in x.get("properties", {}) and any(
                _disjoint(x.child("properties", name), node, memo, seen=seen) for node in in_y
            ):
                return True
    return False


def _equal(a: _Node, b: _Node, memo: _Memo, assumed: set[tuple[int, int]] | None = None) -> bool:
    """Structural equality of two schemas, `$ref`s followed, annotations ignored.

    Remembered per pair (a check compares the same subschemas again and again as it
    descends), unless the answer leaned on a pair assumed equal further up.
    """
    a, b = _follow(a), _follow(b)
    known = memo.equality(a.schema, b.schema)
    if known is not None:
        return known
    assumed_before = memo.assumed
    equal = _equal_walk(a, b, memo, set() if assumed is None else assumed)
    # A difference is a difference; a sameness only when nothing was assumed below.
    if not equal or memo.assumed == assumed_before:
        memo.remember_equality(a.schema, b.schema, equal)
    return equal


def _equal_walk(a: _Node, b: _Node, memo: _Memo, assumed: set[tuple[int, int]]) -> bool:
    if not (isinstance(a.schema, dict) and isinstance(b.schema, dict)):
        both_true = _is_true(a.schema) and _is_true(b.schema)
        return both_true or (a.schema is False and b.schema is False)
    key = (id(a.schema), id(b.schema))
    if key in assumed:
        memo.assumed += 1
        return True
    assumed.add(key)
    keys_a, keys_b = memo.assertions(a.schema), memo.assertions(b.schema)
    if keys_a != keys_b:
        return False
    for keyword in keys_a:
        value_a, value_b = a.schema[keyword], b.schema[keyword]
        if keyword == "$ref":
            if not _equal(_target(a), _target(b), memo, assumed):
                return False
        elif keyword in _SCHEMA_MAPS:
            if not (isinstance(value_a, dict) and isinstance(value_b, dict)):
                return False
            if value_a.keys() != value_b.keys() or not all(
                _equal(a.child(keyword, name), b.child(keyword, name), memo, assumed)
                for name in value_a
            ):
                return False
        elif keyword in _SCHEMA_LISTS:
            if not (isinstance(value_a, list) and isinstance(value_b, list)):
                return False
            if len(value_a) != len(value_b) or not all(
                _equal(a.child(keyword, i), b.child(keyword, i), memo, assumed)
                for i in range(len(value_a))
            ):
                return False
        elif keyword in _SCHEMA_VALUED:
            if not _equal(a.child(keyword), b.child(keyword), memo, assumed):
                return False
        elif not _json_equal(value_a, value_b):
            return False
    return True


def _defaults(contract: TaskContract) -> dict[str, Any]:
    """Top-level parameters with a default, which the decoder fills into calls that omit
    them."""
    return {
        name: schema["default"]
        for name, schema in contract.params["properties"].items()
        if isinstance(schema, dict) and "default" in schema
    }


def _same_call(sub: TaskContract, sup: TaskContract) -> bool:
    """Whether two params schemas equal apart from annotations also bind positional
    arguments and fill defaults alike."""
    return sub.parameters == sup.parameters and _json_equal(_defaults(sub), _defaults(sup))


def _root_calls(root: _Node, sup: TaskContract) -> list[_Call] | None:
    """When the params root lists its calls (`enum`/`const`), every call a producer may
    send that its decoder accepts: a listed one, or one omitting parameters whose listed
    value is their default (the decoder fills it back in). None when the root does not
    list its calls, or when they are too many to list."""
    values = _finite_values(root.schema)
    if values is None:
        return None
    own, theirs = _defaults(root.contract), _defaults(sup)
    validator = compile_schema(_bundle_node(root))
    candidates = (sent for value in values for sent in _omissions(value, own))
    calls = []
    for count, sent in enumerate(candidates):
        if count >= _MAX_ROOT_CALLS:
            return None
        seen = _fill(sent, own)
        if _accepts(validator, seen):
            calls.append(_Call(sent, seen, _fill(sent, theirs)))
    return calls


def _omissions(value: Any, defaults: Mapping[str, Any]) -> Iterator[Any]:
    """`value` and every copy of it without some of the parameters set to their default."""
    if not isinstance(value, dict):
        yield value
        return
    omittable = [
        name for name in value if name in defaults and _json_equal(value[name], defaults[name])
    ]
    for count in range(len(omittable) + 1):
        for omitted in itertools.combinations(omittable, count):
            yield {name: item for name, item in value.items() if name not in omitted}


def _fill(call: Any, defaults: Mapping[str, Any]) -> Any:
    """What a decoder validates: `call` with the defaults of omitted parameters."""
    if not isinstance(call, dict):
        return call
    return {**{name: default for name, default in defaults.items() if name not in call}, **call}


def _as_sent(root: _Node) -> _Node:
    """The params a producer may send that its decoder accepts: parameters with a default
    may be omitted (the decoder fills them in). Wider than exact, never narrower."""
    params = root.schema
    defaults = set(_defaults(root.contract))
    if not defaults:
        return root
    # A listed call may be sent without its defaulted parameters: the list no longer
    # bounds what is sent (reached only when the calls were too many to expand).
    dropped = {"minProperties", "enum", "const"}
    schema = {key: value for key, value in params.items() if key not in dropped}
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in defaults]
    if "dependentRequired" in schema:
        schema["dependentRequired"] = {
            key: [name for name in needed if name not in defaults]
            for key, needed in schema["dependentRequired"].items()
        }
    if _APPLICATORS & set(schema):
        # A filled-in default may be what satisfies them: drop them (and what they
        # evaluate for `unevaluatedProperties`).
        schema = {
            key: value
            for key, value in schema.items()
            if key not in _APPLICATORS and key not in _UNEVALUATED
        }
    return _Node(root.contract, root.ptr, schema)


def _filled_defaults(
    sent: _Node, sup: TaskContract, sup_name: str
) -> tuple[dict[str, Any], list[tuple[Pointer, str]]]:
    """Defaults the `sup` decoder fills into calls that omit them, when filling them in
    provably keeps a call valid apart from the parameter's own value; otherwise the
    parameters whose filling cannot be judged."""
    params = sup.params
    defaults = _defaults(sup)
    breakers = sorted(
        {key for key in params if key in _FILL_BREAKERS}
        | {
            f"{key}[{name!r}]"
            for key in ("dependentRequired", "dependentSchemas")
            for name in params.get(key, {})
            if name in defaults
        }
    )
    if not breakers:
        return defaults, []
    always_sent = set(sent.get("required", []))
    conflicts: list[tuple[Pointer, str]] = [
        (
            ("params", "properties", name, "default"),
            f"the {sup_name} decoder fills the default of {name!r} into calls that omit it, and "
            f"{', '.join(breakers)} at the params root may then refuse the call; "
            "this cannot be proved safe",
        )
        for name in defaults
        if name not in always_sent
    ]
    return {}, conflicts


def _children(node: _Node) -> Iterator[tuple[_Node, bool]]:
    """Subschemas of `node`, each with whether it applies to the same instance."""
    schema = node.schema
    if not isinstance(schema, dict):
        return
    for keyword, value in schema.items():
        if keyword == "$ref" and isinstance(value, str):
            yield _target(node), True
        elif keyword in _SCHEMA_LISTS and isinstance(value, list):
            for index in range(len(value)):
                yield node.child(keyword, index), keyword != "prefixItems"
        elif keyword in _SCHEMA_MAPS and isinstance(value, dict):
            for name in value:
                yield node.child(keyword, name), keyword == "dependentSchemas"
        elif keyword in _SCHEMA_VALUED:
            yield node.child(keyword), keyword in _APPLICATORS


@lru_cache(maxsize=256)
def _ref_cycles(contract: TaskContract, side: str) -> list[tuple[Pointer, str]]:
    """`$ref`s reachable from `side` that lead back, without descending into the
    document, to a schema they are part of: the validator never finishes there."""
    reachable: dict[int, _Node] = {}
    pending = [_Node(contract, (side,), getattr(contract, side))]
    while pending:
        node = pending.pop()
        if not isinstance(node.schema, dict) or id(node.schema) in reachable:
            continue
        reachable[id(node.schema)] = node
        pending.extend(child for child, _ in _children(node))
    found: list[tuple[Pointer, str]] = []
    state: dict[int, int] = {}  # 1: on the path, 2: done

    def visit(node: _Node) -> None:
        state[id(node.schema)] = 1
        for child, in_place in _children(node):
            if not in_place or not isinstance(child.schema, dict):
                continue
            mark = state.get(id(child.schema))
            if mark == 1:
                found.append(
                    (
                        node.ptr,
                        f"schema {json_pointer(child.ptr)} applies itself to the same "
                        "value again (a $ref cycle that never descends into the document):"
                        " the validator recurses forever and accepts nothing",
                    )
                )
            elif mark is None:
                visit(child)
        state[id(node.schema)] = 2

    for key, node in reachable.items():
        if key not in state:
            visit(node)
    return found


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
        if old_default is _MISSING and new_default is _MISSING:
            continue
        if (
            old_default is _MISSING
            or new_default is _MISSING
            or not _json_equal(old_default, new_default)
        ):
            where = ["params", "properties", name]
            yield Incompatibility(
                side="params",
                path=json_pointer([*where, "default"] if new_default is not _MISSING else where),
                version=version,
                rule="default-changed",
                message=f"default of {name!r} changed from {_show_default(old_default)} to "
                f"{_show_default(new_default)}; calls that omit it now get a different value",
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _names(names: Sequence[str]) -> str:
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _was(keyword: str, limit: Any, other: str) -> str:
    """`(was …)` for a limit, naming the keyword only when it differs from `other`."""
    return f"was {_num(limit)}" if keyword == other else f"was {keyword} {_num(limit)}"


def _show_default(value: Any) -> str:
    return "(none)" if value is _MISSING else _show(value)


def _show_types(types: set[str]) -> str:
    return "/".join(sorted(types)) if len(types) < 6 else "any"


def _num(value: Any) -> str:
    return repr(value)
