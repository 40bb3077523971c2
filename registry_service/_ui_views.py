"""What the web UI shows, computed from contracts: pretty JSON, parameter rows, type
summaries, line diffs and compatibility verdicts. No HTTP and no HTML here; the templates
render these values, escaping every one of them."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from taskschema import CompatibilityMode, CompatibilityReport, TaskContract, check_compatibility
from taskschema._compat import who_breaks

# The contract is stored canonically (keys sorted), which puts `$defs` first; people read
# a contract top-down, so the UI shows these keys first (nested keys keep the stored order).
_TOP_LEVEL_ORDER = ("task", "description", "params", "returns", "options", "$defs")
_ENUM_SHOWN = 6
DIFF_CONTEXT = 3


def pretty_json(contract: Mapping[str, Any]) -> str:
    """The contract as indented JSON, its main keys first."""
    first = {key: contract[key] for key in _TOP_LEVEL_ORDER if key in contract}
    rest = {key: value for key, value in contract.items() if key not in first}
    return json.dumps({**first, **rest}, indent=2, ensure_ascii=False)


def show_time(moment: datetime) -> str:
    """A stored time in UTC, to the second; stored times are UTC already."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One row of a version's parameter table."""

    name: str
    position: int
    type: str
    required: bool
    default: str | None
    description: str


def parameters(contract: Mapping[str, Any]) -> list[Parameter]:
    """The contract's parameters in positional order (the order Celery binds `args` in)."""
    params = contract.get("params", {})
    required = set(params.get("required", ()))
    defs = contract.get("$defs", {})
    rows = []
    for position, (name, schema) in enumerate(params.get("properties", {}).items()):
        has_default = isinstance(schema, Mapping) and "default" in schema
        rows.append(
            Parameter(
                name=name,
                position=position,
                type=type_summary(schema, defs),
                required=name in required,
                default=_json(schema["default"]) if has_default else None,
                description=_description(schema, defs),
            )
        )
    return rows


def type_summary(schema: Any, defs: Mapping[str, Any]) -> str:
    """A one-line human summary of a JSON Schema: `integer 1..8192`, `array of Order`."""
    if schema is True or schema == {}:
        return "any"
    if schema is False:
        return "nothing"
    if not isinstance(schema, Mapping):
        return "?"
    if isinstance(schema.get("$ref"), str):
        return _ref_name(schema["$ref"])
    if "const" in schema:
        return f"const {_json(schema['const'])}"
    if isinstance(schema.get("enum"), list):
        return _enum(schema["enum"])
    for keyword, joiner in (("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")):
        if isinstance(schema.get(keyword), list):
            return joiner.join(_grouped(branch, defs) for branch in schema[keyword])
    summary = " | ".join(_one_type(kind, schema, defs) for kind in _types(schema)) or "any"
    return " ".join([summary, *_constraints(schema)])


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [item for item in kind if isinstance(item, str)] if isinstance(kind, list) else []


def _one_type(kind: str, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if kind == "array" and "items" in schema:
        return f"array of {_grouped(schema['items'], defs)}"
    if kind == "string" and isinstance(schema.get("format"), str):
        return f"string ({schema['format']})"
    return kind


def _grouped(schema: Any, defs: Mapping[str, Any]) -> str:
    """A nested summary, parenthesised when it is a union, so `array of (a | b)` reads right."""
    summary = type_summary(schema, defs)
    return f"({summary})" if " | " in summary or " & " in summary else summary


def _constraints(schema: Mapping[str, Any]) -> Iterator[str]:
    for low, high, label in (
        ("minimum", "maximum", ""),
        ("minLength", "maxLength", "length "),
        ("minItems", "maxItems", "items "),
        ("minProperties", "maxProperties", "properties "),
    ):
        if low in schema or high in schema:
            yield f"{label}{_json(schema.get(low, ''))}..{_json(schema.get(high, ''))}"
    if "exclusiveMinimum" in schema:
        yield f"> {_json(schema['exclusiveMinimum'])}"
    if "exclusiveMaximum" in schema:
        yield f"< {_json(schema['exclusiveMaximum'])}"
    if "multipleOf" in schema:
        yield f"multiple of {_json(schema['multipleOf'])}"
    if isinstance(schema.get("pattern"), str):
        yield f"matching {schema['pattern']}"


def _enum(values: Sequence[Any]) -> str:
    shown = " | ".join(_json(value) for value in values[:_ENUM_SHOWN])
    more = f" | … ({len(values) - _ENUM_SHOWN} more)" if len(values) > _ENUM_SHOWN else ""
    return f"one of {shown}{more}"


def _ref_name(ref: str) -> str:
    # A JSON pointer's last token, unescaped (RFC 6901): "#/$defs/Order" -> "Order".
    return ref.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")


def _description(schema: Any, defs: Mapping[str, Any]) -> str:
    """The parameter's own description, else that of the definition it references."""
    if not isinstance(schema, Mapping):
        return ""
    own = schema.get("description")
    if isinstance(own, str):
        return own
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(_ref_name(ref))
        if isinstance(target, Mapping) and isinstance(target.get("description"), str):
            return str(target["description"])
    return ""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- diffs -----------------------------------------------------------------------

LineKind = Literal["same", "added", "removed", "changed", "empty"]


@dataclass(frozen=True)
class Line:
    """One line of one side; `number` is None on the blank side of an added/removed line."""

    number: int | None
    text: str
    kind: LineKind


@dataclass(frozen=True)
class UnifiedLine:
    """One line of a unified diff, with its number in the old and in the new text."""

    old: int | None
    new: int | None
    text: str
    kind: LineKind


@dataclass(frozen=True)
class Hunk:
    """A run of changes with context, as both views show it."""

    header: str
    unified: list[UnifiedLine]
    side_by_side: list[tuple[Line, Line]]


@dataclass(frozen=True)
class Diff:
    hunks: list[Hunk]
    added: int
    removed: int


def diff(old_text: str, new_text: str, context: int = DIFF_CONTEXT) -> Diff:
    """The line diff of two texts as hunks, each renderable unified or side by side."""
    old, new = old_text.splitlines(), new_text.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    hunks = [_hunk(old, new, group) for group in matcher.get_grouped_opcodes(context)]
    added = removed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    # Identical texts still give one all-equal group; it is no change worth showing.
    return Diff(hunks=hunks if added or removed else [], added=added, removed=removed)


_Opcode = tuple[str, int, int, int, int]


def _hunk(old: list[str], new: list[str], group: list[_Opcode]) -> Hunk:
    first, last = group[0], group[-1]
    header = f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@"
    unified: list[UnifiedLine] = []
    pairs: list[tuple[Line, Line]] = []
    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                unified.append(UnifiedLine(i + 1, j + 1, old[i], "same"))
                pairs.append((Line(i + 1, old[i], "same"), Line(j + 1, new[j], "same")))
            continue
        unified.extend(UnifiedLine(i + 1, None, old[i], "removed") for i in range(i1, i2))
        unified.extend(UnifiedLine(None, j + 1, new[j], "added") for j in range(j1, j2))
        olds = [Line(i + 1, old[i], "removed") for i in range(i1, i2)]
        news = [Line(j + 1, new[j], "added") for j in range(j1, j2)]
        pairs.extend(_side_by_side(olds, news))
    return Hunk(header=header, unified=unified, side_by_side=pairs)


def _side_by_side(olds: list[Line], news: list[Line]) -> Iterator[tuple[Line, Line]]:
    """Replaced lines face each other; the longer side's extra lines face a blank."""
    blank = Line(None, "", "empty")
    both = min(len(olds), len(news))
    for index in range(max(len(olds), len(news))):
        left = olds[index] if index < len(olds) else blank
        right = news[index] if index < len(news) else blank
        if index < both:  # a line changed in place, not one only removed or only added
            left = Line(left.number, left.text, "changed")
            right = Line(right.number, right.text, "changed")
        yield left, right


# -- compatibility ---------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The checker's report for the change old -> new under one mode."""

    mode: CompatibilityMode
    report: CompatibilityReport
    in_effect: bool

    @property
    def who_breaks(self) -> list[str]:
        """For each side and direction that has a violation, who breaks if it ships."""
        return who_breaks(self.report.violations)


def verdicts(
    old_version: int,
    old: TaskContract,
    new: TaskContract,
    mode_in_effect: CompatibilityMode,
) -> list[Verdict]:
    """The change old -> new checked under every mode by the registry's own checker.

    Given one earlier version, a transitive mode compares with that one only, as its
    non-transitive form does: the page compares the two versions chosen.
    """
    return [
        Verdict(
            mode=mode,
            report=check_compatibility(new, [(old_version, old)], mode),
            in_effect=mode == mode_in_effect,
        )
        for mode in CompatibilityMode
    ]
