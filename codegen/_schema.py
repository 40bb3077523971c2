"""Contracts grouped by namespace, with their `$defs` merged into one set of named schemas.

The rule for `$defs` (the same for Python and TypeScript):

- Tasks are grouped by namespace, the task name without its last part
  (`orders.process_order` -> `orders`); each namespace gets one models module.
- A definition's identity is its schema together with every definition it reaches
  through `$ref`. Identical definitions in several contracts of a namespace are
  emitted once, under their name.
- When contracts of one namespace define the same name with different shapes, every
  shape gets the name followed by the PascalCase name of the first task (in name
  order) that defines it: `Order` in `orders.bulk_import` and a different `Order` in
  `orders.process_order` become `OrderBulkImport` and `OrderProcessOrder`. Names of
  definitions with one shape never change when other tasks are added.
- Inline objects and enums get names from where they are: `{Owner}{Property}`, where
  the owner is the definition, `{Task}` for a parameter or `{Task}Result` for the
  return value; array items add `Item`, `anyOf`/`oneOf` branches `Option{n}`.
- Existing `title`s are annotations and are dropped, so only these rules name types.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from taskschema import canonical_json

from ._errors import CodegenError
from ._sources import Source

DEFS_PREFIX: Final = "#/$defs/"

# Keywords whose value is one subschema, a list of them, or a map of names to them.
_ONE: Final = (
    "items", "additionalProperties", "contains", "not", "if", "then", "else",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems",
)  # fmt: skip
_MANY: Final = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAP: Final = ("properties", "patternProperties", "dependentSchemas", "$defs")


def pascal(name: str) -> str:
    """`process_order` -> `ProcessOrder`; any run of non-alphanumerics splits words."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", name) if word]
    text = "".join(word[:1].upper() + word[1:] for word in words)
    if not text or not text[0].isalpha():
        text = "T" + text
    return text


def map_subschemas(schema: Any, function: Callable[[Any], Any]) -> Any:
    """A copy of `schema` whose direct subschemas are replaced by `function(subschema)`."""
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ONE and isinstance(value, dict | bool):
            result[key] = function(value)
        elif key in _MANY and isinstance(value, list):
            result[key] = [function(item) for item in value]
        elif key in _MAP and isinstance(value, dict):
            result[key] = {name: function(item) for name, item in value.items()}
        else:
            result[key] = value
    return result


def references(schema: Any) -> Iterable[str]:
    """The `$defs` names `schema` refers to, directly or in nested subschemas."""
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
        yield ref.removeprefix(DEFS_PREFIX).split("/")[0]
    found: list[str] = []
    map_subschemas(schema, lambda sub: found.extend(references(sub)))
    yield from found


def rename_refs(schema: Any, names: Mapping[str, str]) -> Any:
    """A copy of `schema` with `#/$defs/Name` references renamed through `names`."""
    if not isinstance(schema, dict):
        return schema
    result = map_subschemas(schema, lambda sub: rename_refs(sub, names))
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
        head, _, rest = ref.removeprefix(DEFS_PREFIX).partition("/")
        result["$ref"] = DEFS_PREFIX + names.get(head, head) + (f"/{rest}" if rest else "")
    return result


def strip_titles(schema: Any) -> Any:
    """A copy of `schema` without `title` keywords (property names are left alone)."""
    if not isinstance(schema, dict):
        return schema
    result = map_subschemas(schema, strip_titles)
    result.pop("title", None)
    return result


def _needs_name(schema: Any) -> bool:
    """Whether a generator turns `schema` into a class of its own (object or enum)."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return False
    if "properties" in schema:
        return True
    return isinstance(schema.get("enum"), list) and len(schema["enum"]) > 1


def entitle(schema: Any, name: str, *, top: bool = True) -> Any:
    """A copy of `schema` whose inline objects and enums carry a `title` built from
    `name` and their position; `top` titles `schema` itself too."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if top and _needs_name(schema):
        result["title"] = name
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            result[key] = {prop: entitle(sub, name + pascal(prop)) for prop, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            result[key] = entitle(value, name + "Item")
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            result[key] = [
                entitle(sub, f"{name}Option{index}") for index, sub in enumerate(value, 1)
            ]
        elif key == "additionalProperties" and isinstance(value, dict):
            result[key] = entitle(value, name + "Value")
        elif key in ("allOf", "prefixItems") and isinstance(value, list):
            result[key] = [entitle(sub, f"{name}Part{index}") for index, sub in enumerate(value, 1)]
    return result


@dataclass
class TaskPlan:
    """One task of a namespace: its contract with references renamed to the namespace's
    model names."""

    source: Source
    module: str
    pascal: str
    names: dict[str, str]
    params: dict[str, Any]
    returns: Any

    @property
    def task(self) -> str:
        return self.source.task

    @property
    def required(self) -> frozenset[str]:
        return self.source.contract.required


@dataclass
class NamespacePlan:
    """The tasks of one namespace and the named schemas their models are made of."""

    parts: tuple[str, ...]
    tasks: list[TaskPlan] = field(default_factory=list)
    defs: dict[str, Any] = field(default_factory=dict)

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


def namespace_of(task: str) -> tuple[str, ...]:
    return tuple(task.split(".")[:-1])


def check_identifier(part: str, task: str, what: str) -> None:
    if not part.isidentifier() or keyword.iskeyword(part) or part.startswith("_"):
        raise CodegenError(
            f"task {task!r}: {what} {part!r} cannot be a Python module name "
            "(an identifier that is not a keyword and does not start with '_')"
        )


def plan(sources: Iterable[Source]) -> list[NamespacePlan]:
    """Group `sources` by namespace and merge their `$defs` by the rule above.

    Raises CodegenError for a task whose name cannot be a module path, or for a task
    module that would clash with a namespace package.
    """
    by_namespace: dict[tuple[str, ...], list[Source]] = {}
    for source in sorted(sources, key=lambda s: s.task):
        parts = source.task.split(".")
        for part in parts[:-1]:
            check_identifier(part, source.task, "namespace")
        check_identifier(parts[-1], source.task, "task name")
        by_namespace.setdefault(tuple(parts[:-1]), []).append(source)
    for namespace, members in by_namespace.items():
        for source in members:
            module = source.task.split(".")[-1]
            if (*namespace, module) in by_namespace:
                raise CodegenError(
                    f"task {source.task!r} would be the module {module}.py beside the "
                    f"namespace package {module}/ of other tasks; rename one of them"
                )
    return [_plan_namespace(parts, members) for parts, members in sorted(by_namespace.items())]


def _closure(defs: Mapping[str, Any], name: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen or current not in defs:
            continue
        seen[current] = defs[current]
        pending.extend(references(defs[current]))
    return seen


def _member(name: str, schema: Any) -> bytes:
    """`"name":schema` as in `canonical_json` of an object holding it: keys sorted by
    code point, so a closure's key is its members in name order."""
    return canonical_json({name: schema})[1:-1]


def _plan_namespace(parts: tuple[str, ...], sources: list[Source]) -> NamespacePlan:
    # Shapes of each definition name: identity key -> first task (name order) using it.
    shapes: dict[str, dict[bytes, str]] = {}
    keys: dict[tuple[str, str], bytes] = {}
    for source in sources:
        defs = source.contract.defs
        # Each definition encoded once, not once per closure that holds it.
        encoded = {name: _member(name, schema) for name, schema in defs.items()}
        for name in defs:
            key = b"{" + b",".join(encoded[n] for n in sorted(_closure(defs, name))) + b"}"
            keys[source.task, name] = key
            shapes.setdefault(name, {}).setdefault(key, source.task)
    final: dict[tuple[str, str], str] = {}
    for (task, name), key in keys.items():
        variants = shapes[name]
        final[task, name] = (
            name if len(variants) == 1 else name + pascal(variants[key].split(".")[-1])
        )
    # A suffixed name must not be the name of another definition kept as it is.
    kept = {name for name, variants in shapes.items() if len(variants) == 1}
    namespace = NamespacePlan(parts)
    for source in sources:
        contract = source.contract
        module = source.task.split(".")[-1]
        task_pascal = pascal(module)
        names = {name: final[source.task, name] for name in contract.defs}
        for name, new in names.items():
            if new != name and new in kept:
                raise CodegenError(
                    f"task {source.task!r}: definition {name!r} differs from another task's "
                    f"and its namespaced name {new!r} is already a definition; rename one"
                )
            if new not in namespace.defs:
                schema = strip_titles(rename_refs(contract.defs[name], names))
                namespace.defs[new] = entitle(schema, new)
        params = {
            prop: entitle(strip_titles(rename_refs(schema, names)), task_pascal + pascal(prop))
            for prop, schema in contract.params["properties"].items()
        }
        returns = entitle(
            strip_titles(rename_refs(contract.returns, names)), task_pascal + "Result"
        )
        namespace.tasks.append(TaskPlan(source, module, task_pascal, names, params, returns))
    namespace.defs = dict(sorted(namespace.defs.items()))
    return namespace
