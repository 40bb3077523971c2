import hashlib
import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskschema import InvalidJSONError, TaskContract, TaskSchemaError, canonical_json, loads_strict
from taskschema._json import fingerprint


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b'{"a": 1, "a": 2}', "duplicate key 'a'", id="duplicate-key"),
        pytest.param(b'{"o": {"k": 1, "k": 1}}', "duplicate key 'k'", id="nested-duplicate-key"),
        pytest.param(b'[{"k": 1}, {"x": 0, "k": 2, "k": 3}]', "duplicate key 'k'", id="in-array"),
        pytest.param(b"NaN", "NaN is not valid JSON", id="nan"),
        pytest.param(b'{"limit": Infinity}', "Infinity is not valid JSON", id="infinity"),
        pytest.param(b"[-Infinity]", "-Infinity is not valid JSON", id="negative-infinity"),
        pytest.param(b'{"name": "caf\xe9"}', "not UTF-8", id="latin-1-byte"),
        pytest.param(b'"\xff"', "not UTF-8", id="invalid-utf8"),
        pytest.param(b'{"a":\n  }', "line 2 column 3", id="syntax-error-position"),
        pytest.param("[1, 2,]", "line 1 column 7", id="trailing-comma"),
        pytest.param("{'a': 1}", "line 1 column 2", id="single-quotes"),
        pytest.param("{} {}", "Extra data", id="two-documents"),
        pytest.param("", "line 1 column 1", id="empty"),
    ],
)
def test_loads_strict_refuses(data: bytes | str, fragment: str) -> None:
    with pytest.raises(InvalidJSONError) as info:
        loads_strict(data)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [true, false, null], "c": {"d": -2.5e3}}',
        '"caf\\u00e9 \\ud83d\\ude00"',
        "[]",
        " 0 ",
        '{"": "", "A": "a"}',
        '{"emoji": "日本 😀"}',
    ],
)
def test_loads_strict_accepts_normal_json(text: str) -> None:
    assert loads_strict(text) == json.loads(text)
    assert loads_strict(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize("text", ["1e400", '{"maximum": -1e400}'])
def test_loads_strict_refuses_numbers_that_overflow_to_infinity(text: str) -> None:
    with pytest.raises(InvalidJSONError):
        loads_strict(text)


def test_contract_with_lone_surrogate_is_refused_with_a_taskschema_error() -> None:
    text = (
        '{"task": "t.x", "description": "\\ud800", "returns": {},'
        ' "params": {"type": "object", "properties": {}}}'
    )
    with pytest.raises(TaskSchemaError):
        TaskContract.from_json(text)


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    document = {"b": 1, "a": [3, {"d": None, "c": True}], "B": {}, "é": "x", "": 0}
    expected = '{"":0,"B":{},"a":[3,{"c":true,"d":null}],"b":1,"é":"x"}'.encode()
    assert canonical_json(document) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-3.0, b"-3"),
        (-0.0, b"0"),
        (2.5, b"2.5"),
        (1e15, b"1000000000000000"),
        (1e20, b"1e+20"),
        (0.1, b"0.1"),
        (10**30, b"1000000000000000000000000000000"),
        (True, b"true"),
        ([1.0, {"x": 2.0}], b'[1,{"x":2}]'),
    ],
)
def test_canonical_json_numbers(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_canonical_json_keeps_non_ascii_as_utf8() -> None:
    encoded = canonical_json({"naïve": "日本 😀", "ctl": 'a\n"b"'})
    assert encoded == '{"ctl":"a\\n\\"b\\"","naïve":"日本 😀"}'.encode()
    assert b"\\u" not in encoded


def test_canonical_json_keeps_insertion_order_at_ordered_paths_only() -> None:
    document = {"p": {"z": 1, "a": {"y": 1, "b": 2}}, "q": {"z": 1, "a": 2}}
    ordered = frozenset({("p",)})
    assert canonical_json(document, ordered=ordered) == (
        b'{"p":{"z":1,"a":{"b":2,"y":1}},"q":{"a":2,"z":1}}'
    )
    assert canonical_json({"x": document}, ordered=ordered).startswith(b'{"x":{"p":{"a":')


CONTRACT = """{
  "task": "demo.add",
  "description": "Ajoute deux nombres: café",
  "params": {"type": "object",
             "properties": {"x": {"type": "integer", "minimum": 0}, "y": {"type": "number",
                            "default": 1.0}},
             "required": ["x"], "additionalProperties": false},
  "returns": {"type": "number"},
  "options": {"queue": "math", "soft_time_limit": 5, "time_limit": 10}
}"""


def _reordered(document: dict[str, Any]) -> dict[str, Any]:
    params = document["params"]
    return {
        "options": dict(reversed(document["options"].items())),
        "returns": document["returns"],
        "params": {
            "additionalProperties": False,
            "required": params["required"],
            "properties": {
                "x": {"minimum": 0, "type": "integer"},
                "y": {"default": 1, "type": "number"},
            },
            "type": "object",
        },
        "description": document["description"],
        "task": document["task"],
    }


def test_fingerprint_ignores_key_order_whitespace_and_integral_float_spelling() -> None:
    original = TaskContract.from_json(CONTRACT)
    compact = TaskContract.from_json(json.dumps(json.loads(CONTRACT), separators=(",", ":")))
    shuffled = TaskContract(_reordered(json.loads(CONTRACT)))
    assert original.fingerprint == compact.fingerprint == shuffled.fingerprint
    assert original.canonical_json() == shuffled.canonical_json()


def test_fingerprint_changes_when_parameters_are_reordered() -> None:
    document = json.loads(CONTRACT)
    original = TaskContract(document)
    properties = document["params"]["properties"]
    document["params"]["properties"] = {"y": properties["y"], "x": properties["x"]}
    swapped = TaskContract(document)
    assert swapped.parameters == ("y", "x")
    assert swapped.fingerprint != original.fingerprint
    assert swapped != original


def test_fingerprint_is_sha256_of_canonical_bytes() -> None:
    contract = TaskContract.from_json(CONTRACT)
    canonical = contract.canonical_json()
    assert contract.fingerprint == hashlib.sha256(canonical).hexdigest() == fingerprint(canonical)
    assert len(contract.fingerprint) == 64
    assert canonical.startswith(b'{"description":"Ajoute deux nombres: caf\xc3\xa9","options":')
    assert b'"properties":{"x":{"minimum":0,"type":"integer"},"y":{"default":1,' in canonical
    assert TaskContract.from_json(canonical) == contract


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


@given(json_values)
def test_canonical_json_is_idempotent(value: Any) -> None:
    once = canonical_json(value)
    assert canonical_json(loads_strict(once)) == once


@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_ignores_key_order(value: Any, rng: random.Random) -> None:
    assert canonical_json(_shuffled(value, rng)) == canonical_json(value)


@given(json_values)
def test_canonical_json_round_trips_numerically(value: Any) -> None:
    assert loads_strict(canonical_json(value)) == value


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=3), max_size=8))
def test_ordered_root_keeps_key_order(value: dict[str, Any]) -> None:
    assert list(loads_strict(canonical_json(value, ordered=frozenset({()})))) == list(value)
