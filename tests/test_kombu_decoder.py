"""The kombu-level decoder: every message becomes a TaskCall or a Rejection, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.message import Message

from taskschema import StaticContracts, TaskContract
from taskschema.kombu import MessageDecoder, Rejection, TaskCall

from helpers import make_contract

SHOP = Path(__file__).resolve().parents[1] / "schemas" / "shop"
EMAIL = TaskContract.from_json((SHOP / "notifications" / "send_email.json").read_bytes())
TASK = EMAIL.task
VALID = {"to": "ada@example.com", "subject": "Hi", "body": "Hello"}


def message(
    body: Any,
    *,
    headers: Any = None,
    content_type: str | None = "application/json",
    raw: bool = False,
) -> Message:
    data = body if raw else json.dumps(body).encode()
    default_headers = {"task": TASK, "id": "0d4b3f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b", "lang": "py"}
    return Message(
        body=data,
        content_type=content_type,
        content_encoding="utf-8",
        headers=default_headers if headers is None else headers,
        delivery_info={"routing_key": "celery"},
    )


def decoder(**options: Any) -> MessageDecoder:
    return MessageDecoder(StaticContracts([EMAIL]), **options)


def rejected(verdict: object, reason: str) -> Rejection:
    assert isinstance(verdict, Rejection), verdict
    assert verdict.reason == reason, verdict
    return verdict


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([], VALID),
        (["ada@example.com", "Hi", "Hello"], {}),
        (["ada@example.com"], {"subject": "Hi", "body": "Hello", "cc": []}),
    ],
    ids=["keyword", "positional", "mixed"],
)
def test_valid_calls_are_bound_onto_params(args: list[Any], kwargs: dict[str, Any]) -> None:
    verdict = decoder().decode(message([args, kwargs, {"callbacks": None}]))
    assert isinstance(verdict, TaskCall)
    assert verdict.task == TASK
    assert verdict.protocol == 2
    assert verdict.contract == EMAIL
    assert verdict.params is not None
    assert {k: verdict.params[k] for k in ("to", "subject", "body")} == VALID


def test_defaults_are_filled_before_validating() -> None:
    """Making a parameter with a default required is a compatible change (the checker
    allows it), so a call that omits it must still pass: the decoder validates the call
    as the task will run it, defaults filled."""
    contract = TaskContract.from_json(
        json.dumps(
            make_contract(
                "demo.defaults",
                properties={"x": {"type": "integer"}, "tags": {"type": "array", "default": []}},
                required=["x", "tags"],
            )
        )
    )
    decode = MessageDecoder(StaticContracts([contract])).decode
    headers = {"task": "demo.defaults", "id": "1"}
    verdict = decode(message([[1], {}, {}], headers=headers))
    assert isinstance(verdict, TaskCall), verdict
    assert verdict.params == {"x": 1, "tags": []}
    assert verdict.args == [1]  # what the task receives is untouched; it fills them too
    other = decode(message([[2], {}, {}], headers=headers))
    assert isinstance(other, TaskCall)
    assert other.params is not None
    assert verdict.params is not None
    assert other.params["tags"] is not verdict.params["tags"]  # a copy per call
    refused = rejected(decode(message([[], {}, {}], headers=headers)), "contract-violation")
    assert [v.path for v in refused.violations] == [""]


def test_protocol_1_bodies_are_accepted() -> None:
    body = {"task": TASK, "id": "abc", "args": [], "kwargs": VALID}
    verdict = decoder().decode(message(body, headers={}))
    assert isinstance(verdict, TaskCall)
    assert (verdict.protocol, verdict.id) == (1, "abc")


@pytest.mark.parametrize(
    ("body", "headers", "path"),
    [
        ([[], VALID], None, "/body"),
        ({"args": []}, None, "/body"),
        ([[], VALID, {}], {"task": TASK}, "/headers/id"),
        ([[], VALID, {}], {"task": TASK, "id": ""}, "/headers/id"),
        ([[], VALID, {}], {"task": 7, "id": "x"}, "/headers/task"),
        ([[], ["not", "an", "object"], {}], None, "/kwargs"),
        ([{"to": "x"}, {}, {}], None, "/args"),
        ([[], VALID, "embed"], None, "/body/2"),
        ({"task": TASK, "args": [], "kwargs": VALID}, {}, "/id"),
    ],
)
def test_malformed_envelopes_are_rejected_with_the_place(
    body: Any, headers: Any, path: str
) -> None:
    verdict = rejected(decoder().decode(message(body, headers=headers)), "malformed-envelope")
    assert path in [v.path for v in verdict.violations]


def test_a_body_without_task_header_or_v1_shape_is_rejected() -> None:
    verdict = rejected(decoder().decode(message([[], {}, {}], headers={})), "malformed-envelope")
    assert "protocol 1" in verdict.message


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        (None, "no content type"),
        ("application/x-python-serialize", "pickle never"),
        ("text/plain", "not accepted"),
    ],
)
def test_content_types_outside_the_accept_list_are_rejected(
    content_type: str | None, fragment: str
) -> None:
    verdict = rejected(
        decoder().decode(message([[], VALID, {}], content_type=content_type)), "content-type"
    )
    assert fragment in verdict.message
    assert verdict.task == TASK


def test_pickle_is_refused_even_when_accepted() -> None:
    permissive = decoder(accept={"application/json", "application/x-python-serialize"})
    msg = message(b"\x80\x04K\x01.", content_type="application/x-python-serialize", raw=True)
    rejected(permissive.decode(msg), "content-type")


def test_oversized_bodies_are_rejected() -> None:
    big = {**VALID, "body": "x" * 2000}
    verdict = rejected(decoder(max_body_bytes=1000).decode(message([[], big, {}])), "too-large")
    assert "over the limit of 1000" in verdict.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'[[], {"to": ', "invalid JSON"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b'[[], {"a": 1, "a": 2}, {}]', "duplicate key"),
        (b"[[], {}, {}]" + b" garbage", "invalid JSON"),
    ],
)
def test_undecodable_bodies_are_rejected(raw: bytes, fragment: str) -> None:
    verdict = rejected(decoder().decode(message(raw, raw=True)), "undecodable")
    assert fragment in verdict.message
    assert verdict.id is not None


def test_nesting_beyond_the_limit_is_rejected() -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    verdict = rejected(decoder(max_depth=32).decode(message([[], {"to": deep}, {}])), "undecodable")
    assert "deeper than 32" in verdict.message


MARKER = {"__type__": "datetime", "__value__": "2024-01-01T00:00:00"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ([[MARKER], {}, {}], "/args/0"),
        # kombu decodes the embed (callbacks, chain, ...) as well, in the consumer too.
        ([[], VALID, {"callbacks": [MARKER], "chain": None}], "/body/2/callbacks/0"),
    ],
    ids=["in-args", "in-embed"],
)
def test_kombu_type_markers_are_rejected_with_their_path(body: Any, path: str) -> None:
    verdict = rejected(decoder().decode(message(body)), "type-marker")
    assert [v.path for v in verdict.violations] == [path]
    assert "datetime" in verdict.violations[0].message


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        # Each spells the key __type__ only through JSON escapes, as kombu will read it.
        (rb'[[{"\u005f_type__": "datetime", "__value__": "2024-01-01T00:00:00"}], {}, {}]',
         "/args/0"),
        (rb'[[], {"at": {"__typ\u0065__": "uuid", "__value__": {"hex": "00"}}}, {}]', "/kwargs/at"),
        (rb'[[], {}, {"chord": {"\u005F\u005F\u0074\u0079\u0070\u0065\u005F\u005F": "x", '
         rb'"__value__": 1}}]', "/body/2/chord"),
    ],
    ids=["escaped-underscore", "escaped-letter", "all-escaped-in-embed"],
)  # fmt: skip
def test_markers_are_found_however_their_key_is_spelled(raw: bytes, path: str) -> None:
    assert b"__type__" not in raw  # a search of the raw bytes finds nothing
    assert isinstance(json.loads(raw), list)  # valid JSON, as kombu would decode it
    verdict = rejected(decoder().decode(message(raw, raw=True)), "type-marker")
    assert [v.path for v in verdict.violations] == [path]


def test_markers_in_a_protocol_1_body_are_found_in_any_field() -> None:
    marker = {"__type__": "datetime", "__value__": "2024-01-01T00:00:00"}
    body = {"task": TASK, "id": "abc", "args": [], "kwargs": VALID, "eta": marker}
    raw = json.dumps(body).encode().replace(b'"__type__"', rb'"\u005f_type__"')
    assert b"__type__" not in raw
    verdict = rejected(decoder().decode(message(raw, headers={}, raw=True)), "type-marker")
    assert [v.path for v in verdict.violations] == ["/eta"]


@pytest.mark.parametrize(
    "raw",
    [
        rb'[[], {"to": "ada@example.com", "subject": "\u005f_type__", "body": "x"}, {}]',
        rb'[[], {"to": "ada@example.com", "subject": "Hi", "body": "Caf\u00e9"}, {}]',
    ],
    ids=["marker-name-as-a-value", "escaped-text"],
)
def test_escapes_that_spell_no_marker_key_pass(raw: bytes) -> None:
    assert isinstance(decoder().decode(message(raw, raw=True)), TaskCall)


def test_an_object_with_type_and_other_keys_is_not_a_marker() -> None:
    # kombu decodes only objects whose keys are exactly __type__ and __value__.
    kwargs = {**VALID, "subject": "Hi"}
    raw = json.dumps([[], kwargs, {"x": {"__type__": "datetime", "__value__": 1, "y": 2}}])
    assert isinstance(decoder().decode(message(raw.encode(), raw=True)), TaskCall)


def test_a_duplicate_key_next_to_a_marker_is_still_undecodable() -> None:
    raw = b'[[{"__type__": "date", "__value__": "2024-01-01"}], {"to": 1, "to": 2}, {}]'
    rejected(decoder().decode(message(raw, raw=True)), "undecodable")


@pytest.mark.parametrize(
    ("kwargs", "paths"),
    [
        ({**VALID, "to": "not-an-email"}, ["/to"]),
        ({"to": "ada@example.com"}, ["", ""]),
        ({**VALID, "priority": 1}, [""]),
        ({**VALID, "cc": ["a@example.com", 5]}, ["/cc/1"]),
    ],
    ids=["format", "missing-required", "unknown-parameter", "wrong-type"],
)
def test_contract_violations_list_every_path(kwargs: dict[str, Any], paths: list[str]) -> None:
    verdict = rejected(decoder().decode(message([[], kwargs, {}])), "contract-violation")
    assert [v.path for v in verdict.violations] == paths
    assert verdict.contract == EMAIL


@pytest.mark.parametrize(
    ("args", "kwargs", "path"),
    [
        (["a@example.com", "s", "b", [], None, "extra"], {}, ""),
        (["a@example.com"], {"to": "b@example.com"}, "/to"),
    ],
)
def test_signature_errors_are_rejected(args: list[Any], kwargs: dict[str, Any], path: str) -> None:
    verdict = rejected(decoder().decode(message([args, kwargs, {}])), "signature")
    assert [v.path for v in verdict.violations] == [path]


def test_tasks_without_a_contract_are_allowed_or_rejected_by_policy() -> None:
    other = message([[1], {}, {}], headers={"task": "misc.other", "id": "1"})
    allowed = decoder().decode(other)
    assert isinstance(allowed, TaskCall)
    assert allowed.contract is None
    rejected(decoder(unknown_tasks="reject").decode(other), "no-contract")


def test_a_failing_contract_source_does_not_raise() -> None:
    class Broken:
        def contract_for(self, task: str) -> TaskContract | None:
            raise RuntimeError("boom")

    verdict = rejected(MessageDecoder(Broken()).decode(message([[], VALID, {}])), "undecodable")
    assert "boom" in verdict.message


def test_rejections_serialise_to_plain_json() -> None:
    verdict = rejected(
        decoder().decode(message([[], {**VALID, "to": 3}, {}])), "contract-violation"
    )
    document = json.loads(json.dumps(verdict.to_dict()))
    assert document["error"] == "contract-violation"
    assert document["task"] == TASK
    assert document["violations"][0]["path"] == "/to"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    headers=st.none()
    | st.dictionaries(st.sampled_from(["task", "id", "x"]), json_values, max_size=3),
    content_type=st.sampled_from(
        [None, "application/json", "application/x-python-serialize", "text/x"]
    ),
)
def test_the_decoder_never_raises(body: bytes, headers: Any, content_type: str | None) -> None:
    verdict = decoder(unknown_tasks="reject").decode(
        Message(body=body, content_type=content_type, headers=headers, content_encoding="utf-8")
    )
    assert isinstance(verdict, TaskCall | Rejection)
    if isinstance(verdict, TaskCall):
        assert verdict.contract == EMAIL
