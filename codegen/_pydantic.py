"""Pydantic v2 models for one namespace, through datamodel-code-generator.

One generator call per namespace covers every definition and, as extra private models,
one "signature" per task: its parameters (all required, so the types are exact) and its
return value. The output is then tidied with the syntax tree:

- the signature models are taken out, after reading each field's type for the stubs;
- root models (constrained strings, unions, ...) are written inline where they are
  used, so `list[Email]` is `list[Annotated[str, Field(max_length=254)]]` and a caller
  passes plain values, as the field-level `--collapse-root-models` already does;
- imports left unused by that are dropped;
- a class whose statement needs a class written after it (a default `Channel.email`
  above `class Channel`) gets that class moved up, just before it.

Results are cached on disk by the hash of everything they depend on (input schema,
generator version and options, this module's code), so regenerating after one contract
changes re-runs the generator for its namespace only.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, cast

from ._errors import CodegenError
from ._schema import NamespacePlan, TaskPlan

LINE_LENGTH: Final = 88
SIGNATURE_PREFIX: Final = "TaskschemaSignature"
_RETURN_FIELD: Final = "taskschema_return"


@dataclass(frozen=True)
class Signature:
    """The Python types of one task's parameters (in order) and of its return value."""

    params: dict[str, str]
    returns: str
    imports: dict[str, str]  # name used in the types -> module it is imported from


@dataclass(frozen=True)
class Models:
    """A namespace's models module and the signature of each of its tasks."""

    source: str
    classes: tuple[str, ...]
    # By task module name, not task name: the same input in another namespace (and so
    # the same cache entry) has other task names.
    signatures: dict[str, Signature]


@cache
def generator_version() -> str:
    from importlib.metadata import version

    return version("datamodel-code-generator")


def _options() -> dict[str, Any]:
    from datamodel_code_generator import InputFileType, PythonVersion
    from datamodel_code_generator.enums import DataModelType

    return {
        "input_file_type": InputFileType.JsonSchema,
        "output_model_type": DataModelType.PydanticV2BaseModel,
        "target_python_version": PythonVersion.PY_311,
        "use_annotated": True,
        "field_constraints": True,
        "use_schema_description": True,
        "use_title_as_name": True,
        "collapse_root_models": True,
        "use_subclass_enum": True,
        "enum_field_as_literal": "one",
        # Defaults of enum fields are written as members (`Channel.email`).
        "set_default_enum_member": True,
        "use_default_kwarg": True,
        "strict_nullable": True,
        "use_union_operator": True,
        "use_standard_collections": True,
        "use_double_quotes": True,
        "keep_model_order": True,
        "disable_timestamp": True,
        "skip_root_model": True,
        # Contracts never fetch: `$ref`s are local, and remote ones are refused anyway.
        "allow_remote_refs": False,
        # Email format is checked by the contract; no email-validator dependency.
        "type_mappings": ["email=string", "idn-email=string"],
        # The builtin formatter with a fixed line length, so no pyproject.toml near the
        # working directory changes the output.
        "formatters": ["builtin"],
        "builtin_format_line_length": LINE_LENGTH,
    }


def _options_key() -> str:
    return json.dumps(
        {key: str(value) for key, value in sorted(_options().items())}, sort_keys=True
    )


@cache
def _own_code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def generator_input(namespace: NamespacePlan) -> dict[str, Any]:
    """The one JSON Schema the generator reads for `namespace`."""
    defs: dict[str, Any] = {}
    for name, schema in namespace.defs.items():
        defs[name] = {**schema, "title": name} if isinstance(schema, dict) else schema
    for task in namespace.tasks:
        title = signature_name(task, namespace)
        return_field = _return_field(task)
        properties: dict[str, Any] = {}
        for name, schema in task.params.items():
            if isinstance(schema, dict):
                schema = {key: value for key, value in schema.items() if key != "default"}
            properties[name] = schema
        properties[return_field] = task.returns
        defs[title] = {
            "title": title,
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
    return {"$defs": defs}


def signature_name(task: TaskPlan, namespace: NamespacePlan) -> str:
    name = SIGNATURE_PREFIX + task.pascal
    while name in namespace.defs:
        name += "X"
    return name


def _return_field(task: TaskPlan) -> str:
    name = _RETURN_FIELD
    while name in task.params:
        name += "_"
    return name


def cache_dir() -> Path:
    """Where generated models are cached: `$TASKSCHEMA_CACHE_DIR/codegen`, default
    `~/.cache/taskschema/codegen`."""
    root = os.environ.get("TASKSCHEMA_CACHE_DIR") or Path.home() / ".cache" / "taskschema"
    return Path(root) / "codegen"


def generate_models(namespace: NamespacePlan, *, cache: Path | None = None) -> Models:
    """The models module of `namespace` and its tasks' signatures.

    With `cache` (a folder), a result made from the same input is read back instead of
    calling the generator again.
    """
    schema = generator_input(namespace)
    text = json.dumps(schema, sort_keys=False, ensure_ascii=False, separators=(",", ":"))
    key = hashlib.sha256(
        "\n".join([generator_version(), _options_key(), _own_code_hash(), text]).encode()
    ).hexdigest()
    if cache is not None:
        stored = _read_cache(cache / f"{key}.json")
        if stored is not None:
            return stored
    raw = _run_generator(schema, namespace)
    models = _tidy(raw, namespace)
    if cache is not None:
        _write_cache(cache / f"{key}.json", models)
    return models


def _run_generator(schema: Mapping[str, Any], namespace: NamespacePlan) -> str:
    from datamodel_code_generator import generate

    try:
        # The generator mutates what it is given; keep the plan intact.
        output = generate(copy.deepcopy(dict(schema)), **_options())
    except Exception as exc:  # the generator raises many types for unsupported input
        label = namespace.dotted or "(top level)"
        raise CodegenError(
            f"datamodel-code-generator failed on namespace {label} "
            f"({', '.join(task.task for task in namespace.tasks)}): {exc}"
        ) from exc
    if not isinstance(output, str):
        raise CodegenError("datamodel-code-generator returned no single module")
    return output


def _read_cache(path: Path) -> Models | None:
    try:
        data = json.loads(path.read_text("utf-8"))
        return Models(
            source=data["source"],
            classes=tuple(data["classes"]),
            signatures={
                task: Signature(value["params"], value["returns"], value["imports"])
                for task, value in data["signatures"].items()
            },
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, models: Models) -> None:
    data = {
        "source": models.source,
        "classes": list(models.classes),
        "signatures": {
            task: {"params": sig.params, "returns": sig.returns, "imports": sig.imports}
            for task, sig in models.signatures.items()
        },
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a concurrent run never reads half a file.
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
        ) as file:
            json.dump(data, file, ensure_ascii=False)
        os.replace(file.name, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


# -- tidying the generator's output ------------------------------------------------------


def _is_root_model(node: ast.stmt) -> bool:
    return isinstance(node, ast.ClassDef) and any(
        isinstance(base, ast.Subscript)
        and isinstance(base.value, ast.Name)
        and base.value.id == "RootModel"
        for base in node.bases
    )


def _root_annotation(node: ast.ClassDef) -> ast.expr | None:
    for statement in node.body:
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.target.id == "root"
        ):
            return statement.annotation
    return None


def _names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


def _rebuilt(node: ast.AST, function: Callable[[ast.AST], ast.AST]) -> ast.AST:
    """`node` with `function` applied to each child node; `node` itself when nothing
    changed. Never mutates: unchanged subtrees are shared, so no deep copies are needed."""
    changed = False
    fields: dict[str, Any] = {}
    for name, value in ast.iter_fields(node):
        new: Any = value
        if isinstance(value, ast.AST):
            new = function(value)
        elif isinstance(value, list):
            new = [function(item) if isinstance(item, ast.AST) else item for item in value]
            changed = changed or any(a is not b for a, b in zip(new, value, strict=True))
            fields[name] = new
            continue
        changed = changed or new is not value
        fields[name] = new
    return type(node)(**fields) if changed else node


def _substitute(node: ast.AST, replacements: Mapping[str, ast.expr]) -> ast.AST:
    """`node` with every name in `replacements` replaced by its expression."""
    if isinstance(node, ast.Name):
        return replacements.get(node.id, node)
    return _rebuilt(node, lambda child: _substitute(child, replacements))


def _plain(node: ast.AST, replacements: Mapping[str, ast.expr]) -> ast.AST:
    """`node` with names replaced as `_substitute` does and `Annotated[X, ...]` -> `X`:
    the stubs' signatures carry types, not constraints (the contract checks those before
    anything is sent)."""
    if isinstance(node, ast.Name):
        return replacements.get(node.id, node)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Annotated"
    ):
        inner = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) else node.slice
        return _plain(inner, replacements)
    return _rebuilt(node, lambda child: _plain(child, replacements))


def _inline_roots(module: ast.Module, used_as_value: set[str]) -> dict[str, ast.expr]:
    """The root models that can be written inline, each with its fully inlined type.

    A root model that refers to itself (recursion) or is called or used as a value
    somewhere (`used_as_value`) stays a class.
    """
    candidates: dict[str, ast.expr] = {}
    for node in module.body:
        if _is_root_model(node):
            assert isinstance(node, ast.ClassDef)
            annotation = _root_annotation(node)
            if annotation is not None and node.name not in used_as_value:
                candidates[node.name] = annotation
    resolved: dict[str, ast.expr] = {}
    resolving: set[str] = set()

    def resolve(name: str) -> ast.expr | None:
        if name in resolved:
            return resolved[name]
        if name in resolving:
            return None  # recursive: keep the class
        resolving.add(name)
        annotation = candidates[name]
        inner: dict[str, ast.expr] = {}
        for used in _names(annotation) & candidates.keys():
            result = resolve(used)
            if result is None:
                resolving.discard(name)
                return None
            inner[used] = result
        resolving.discard(name)
        done = cast(ast.expr, _substitute(annotation, inner))
        resolved[name] = done
        return done

    for name in sorted(candidates):
        resolve(name)
    return resolved


class _Edits:
    """Text edits by (line, column) spans of the original source, applied at once."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines(keepends=True)
        self.replaced: list[tuple[int, int, int, int, str]] = []
        self.dropped: set[int] = set()  # 0-based line numbers
        # 0-based first line of a statement -> the line ranges of statements moved there.
        self.moved_in: dict[int, list[range]] = {}
        self.moved_out: set[int] = set()

    def _column(self, line: int, byte_offset: int) -> int:
        return len(self.lines[line - 1].encode("utf-8")[:byte_offset].decode("utf-8"))

    def replace(self, node: ast.AST, text: str) -> None:
        start_line, end_line = node.lineno, node.end_lineno  # type: ignore[attr-defined]
        assert end_line is not None
        self.replaced.append(
            (
                start_line,
                self._column(start_line, node.col_offset),  # type: ignore[attr-defined]
                end_line,
                self._column(end_line, node.end_col_offset),  # type: ignore[attr-defined]
                text,
            )
        )

    @staticmethod
    def _lines_of(node: ast.stmt) -> range:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        assert node.end_lineno is not None
        return range(first - 1, node.end_lineno)

    def drop(self, node: ast.stmt) -> None:
        self.dropped.update(self._lines_of(node))

    def move_before(self, node: ast.stmt, target: ast.stmt) -> None:
        """Write `node` (with the edits inside it) just before `target` instead of where
        it is; nodes moved before one target keep the order they were moved in."""
        lines = self._lines_of(node)
        self.moved_out.update(lines)
        self.moved_in.setdefault(self._lines_of(target).start, []).append(lines)

    def apply(self) -> str:
        lines = list(self.lines)
        for start, start_col, end, end_col, text in sorted(self.replaced, reverse=True):
            if start - 1 in self.dropped:
                continue
            head = lines[start - 1][:start_col]
            tail = lines[end - 1][end_col:]
            lines[start - 1 : end] = [head + text + tail]
            # Keep line numbering stable for the drops below.
            lines[start:start] = [""] * (end - start)
        kept: list[str] = []
        for index, line in enumerate(lines):
            for block in self.moved_in.get(index, []):
                kept.extend(lines[moved] for moved in block if moved not in self.dropped)
                kept.append("\n\n")  # two blank lines between top-level statements
            if index not in self.dropped and index not in self.moved_out:
                kept.append(line)
        text = re.sub(r"\n{4,}", "\n\n\n", "".join(kept))
        return text.rstrip("\n") + "\n"


def _tidy(raw: str, namespace: NamespacePlan) -> Models:
    from datamodel_code_generator.format import apply_builtin_formatter

    module = ast.parse(raw)
    # One walk over the module: the names each top-level statement uses, and the names
    # called or with an attribute read (such root models must stay classes).
    names_by_statement: list[list[ast.Name]] = []
    used_as_value: set[str] = set()
    for node in module.body:
        found: list[ast.Name] = []
        for child in ast.walk(node):
            if isinstance(child, ast.Name):
                found.append(child)
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Name):
                used_as_value.add(child.func.id)
            elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
                used_as_value.add(child.value.id)
        names_by_statement.append(found)
    inline = _inline_roots(module, used_as_value)
    inline_text = {name: ast.unparse(expr) for name, expr in inline.items()}
    inline_names = {name: _names(expr) for name, expr in inline.items()}
    signature_names = {signature_name(task, namespace): task for task in namespace.tasks}
    signature_classes: dict[str, ast.ClassDef] = {}
    edits = _Edits(raw)
    # Which names the kept code uses (after inlining) decides which imports stay.
    used: set[str] = set()
    for node, found in zip(module.body, names_by_statement, strict=True):
        if isinstance(node, ast.ClassDef) and node.name in signature_names:
            signature_classes[node.name] = node
            edits.drop(node)
        elif (
            isinstance(node, ast.ClassDef) and node.name in inline
        ) or (  # `Name.model_rebuild()` of a class that is gone
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and isinstance(node.value.func.value, ast.Name)
            and node.value.func.value.id in (inline.keys() | signature_names.keys())
        ):
            edits.drop(node)
        else:
            for name in found:
                if name.id in inline:
                    edits.replace(name, inline_text[name.id])
                    used |= inline_names[name.id]
                else:
                    used.add(name.id)
    kept_classes = tuple(
        node.name
        for node in module.body
        if isinstance(node, ast.ClassDef)
        and node.name not in inline
        and node.name not in signature_names
    )
    imported: dict[str, str] = {}
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
            kept = [alias for alias in node.names if (alias.asname or alias.name) in used]
            if not kept:
                edits.drop(node)
            elif len(kept) != len(node.names):
                names = ", ".join(
                    alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in kept
                )
                edits.replace(node, f"from {node.module} import {names}")
    _order_definitions(module, inline.keys(), edits)
    source = edits.apply()
    source = _strip_header(source)
    if any(len(line) > LINE_LENGTH for line in source.splitlines()):
        # Only inlined types can make a line too long; the rest is formatted already.
        source = apply_builtin_formatter(
            source, line_length=LINE_LENGTH, wrap_string_literal=True, string_normalization=True
        )
    # The signatures' types: inlined roots without their constraints, made once.
    plain_roots = {name: cast(ast.expr, _plain(expr, {})) for name, expr in inline.items()}
    signatures = {
        task.module: _signature(signature_classes, name, task, plain_roots, imported, kept_classes)
        for name, task in signature_names.items()
    }
    return Models(source=source, classes=kept_classes, signatures=signatures)


def _eager_names(node: ast.AST) -> set[str]:
    """The names `node` reads when it is evaluated (a lambda's body runs later)."""
    if isinstance(node, ast.Lambda):
        return set()
    if isinstance(node, ast.Name):
        return {node.id}
    names: set[str] = set()
    for child in ast.iter_child_nodes(node):
        names |= _eager_names(child)
    return names


def _needed_at_definition(node: ast.ClassDef) -> set[str]:
    """The names a class statement reads when it runs: its bases and keywords, and the
    values assigned in its body, such as field defaults. Annotations are not read then
    (the module has `from __future__ import annotations`)."""
    evaluated: list[ast.AST] = [*node.bases, *(keyword.value for keyword in node.keywords)]
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign | ast.Assign) and statement.value is not None:
            evaluated.append(statement.value)
    names: set[str] = set()
    for expression in evaluated:
        names |= _eager_names(expression)
    return names - {node.name}


def _order_definitions(module: ast.Module, gone: Iterable[str], edits: _Edits) -> None:
    """Move classes up so each class statement runs after the classes it reads.

    The generator's `keep_model_order` orders classes by their bases but not by their
    field defaults, so an enum default (`channel: Channel = Channel.email`) can come
    before `class Channel` and fail with NameError on import. A class needed earlier is
    moved just before the first class that needs it, its own needs first; the rest keep
    the generator's order.
    """
    classes = {
        node.name: node
        for node in module.body
        if isinstance(node, ast.ClassDef) and node.name not in set(gone)
    }
    placed: set[str] = set()

    def place(name: str, before: ast.ClassDef) -> None:
        placed.add(name)
        node = classes[name]
        for needed in sorted(_needed_at_definition(node) & classes.keys() - placed):
            place(needed, before)
        if node is not before:
            edits.move_before(node, before)

    for name, node in classes.items():
        if name not in placed:
            place(name, node)


def _strip_header(source: str) -> str:
    lines = source.splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines)


def _signature(
    classes: Mapping[str, ast.ClassDef],
    name: str,
    task: TaskPlan,
    plain_roots: Mapping[str, ast.expr],
    imported: Mapping[str, str],
    models: Iterable[str],
) -> Signature:
    node = classes.get(name)
    if node is None:
        raise CodegenError(f"{task.task}: the generator wrote no model for its signature")
    fields = [
        statement.annotation
        for statement in node.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    ]
    expected = len(task.params) + 1
    if len(fields) != expected:
        raise CodegenError(
            f"{task.task}: the generator wrote {len(fields)} signature fields, expected {expected}"
        )
    types: list[str] = []
    names: set[str] = set()
    for annotation in fields:
        plain = _plain(annotation, plain_roots)
        names |= _names(plain)
        types.append(ast.unparse(plain))
    model_names = set(models)
    imports = {
        used: "._models" if used in model_names else imported[used]
        for used in sorted(names)
        if used in model_names or used in imported
    }
    return Signature(
        params=dict(zip(task.params, types[:-1], strict=True)),
        returns=types[-1],
        imports=imports,
    )
