import json
from pathlib import Path
from typing import Any

import pytest

from taskschema import CallValidationError, ContractError, TaskContract, TaskOptions, Violation
from taskschema._contract import check_document

SHOP = Path(__file__).resolve().parents[1] / "schemas" / "shop"
EXAMPLES = sorted(SHOP.rglob("*.json"))
UUID_A = "3f1c2a4e-8b7d-4c6a-9e5f-1a2b3c4d5e6f"
UUID_B = "0b6e4a1c-2d3f-4e5a-8b9c-0d1e2f3a4b5c"
FALSE_PATH_BUG = "jsonschema 4.26 descend() drops the instance path of `false` subschema errors"


def shop(name: str) -> TaskContract:
    return TaskContract.from_json((SHOP / f"{name}.json").read_bytes())


def make(
    properties: Any = None, *, required: tuple[str, ...] = (), defs: Any = None, **top: Any
) -> dict[str, Any]:
    properties = {"x": {"type": "integer"}} if properties is None else properties
    params = {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }
    return {"task": "demo.task", "params": params, "returns": {}, "$defs": defs or {}, **top}


def refusal(document: Any) -> list[Violation]:
    with pytest.raises(ContractError) as info:
        TaskContract(document)
    assert info.value.violations == check_document(document)
    assert all(isinstance(v, Violation) for v in info.value.violations)
    return info.value.violations


def assert_refused(document: Any, path: str, fragment: str) -> None:
    found = refusal(document)
    assert any(v.path == path and fragment in v.message for v in found), found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shop_contract_loads(path: Path) -> None:
    document = json.loads(path.read_text("utf-8"))
    contract = TaskContract.from_json(path.read_bytes())
    assert check_document(document) == []
    assert contract.task == document["task"]
    assert contract.parameters == tuple(document["params"]["properties"])
    assert contract.required == frozenset(document["params"]["required"])
    assert contract == TaskContract(document)


def test_parameters_keep_declaration_order_not_alphabetical() -> None:
    contract = TaskContract(make({"zeta": {}, "alpha": {}, "mid": {}}, required=("mid",)))
    assert contract.parameters == ("zeta", "alpha", "mid")
    assert contract.required == frozenset({"mid"})
    assert list(contract.to_dict()["params"]["properties"]) == ["zeta", "alpha", "mid"]
    assert shop("orders/refund_payment").parameters == (
        "order_id",
        "amount",
        "method",
        "idempotency_key",
    )


def test_options_are_parsed_into_task_options() -> None:
    options = shop("orders/get_order_status").options
    assert options == TaskOptions(
        queue="orders", expires=30, soft_time_limit=5, time_limit=10, rate_limit="50/s"
    )
    assert options.max_retries is None
    assert shop("notifications/send_email").options.rate_limit == "10/s"
    assert TaskContract(make()).options == TaskOptions()


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        pytest.param(
            make({"x": {"type": "strin"}}),
            "/params/properties/x/type",
            "'strin' is not one of",
            id="wrong-type-keyword-value",
        ),
        pytest.param(
            {k: v for k, v in make().items() if k != "task"},
            "",
            "'task' is a required property",
            id="missing-task",
        ),
        pytest.param(make(task="orders..process"), "/task", "does not match", id="bad-task-name"),
        pytest.param(make(task="1orders"), "/task", "does not match", id="task-starts-with-digit"),
        pytest.param(make(owner="me"), "", "'owner' was unexpected", id="unknown-top-level-key"),
        pytest.param(
            make(options={"retries": 3}),
            "/options",
            "'retries' was unexpected",
            id="unknown-option-key",
        ),
        pytest.param(
            make(options={"priority": 300}),
            "/options/priority",
            "greater than the maximum of 255",
            id="option-out-of-range",
        ),
        pytest.param(
            make(params={"type": "array", "properties": {}}),
            "/params/type",
            "'object' was expected",
            id="params-type-not-object",
        ),
        pytest.param(make(params=[]), "/params", "is not of type 'object'", id="params-not-a-dict"),
        pytest.param(
            make({"2x": {}}), "/params/properties", "'2x' does not match", id="bad-parameter-name"
        ),
    ],
)
def test_meta_schema_failures_have_json_pointer_paths(
    document: Any, path: str, fragment: str
) -> None:
    assert_refused(document, path, fragment)


@pytest.mark.parametrize("part", ["params", "returns"])
def test_defs_inside_params_or_returns_is_refused_at_its_own_path(part: str) -> None:
    schema = {"type": "object", "properties": {}, "$defs": {"A": {}}}
    assert_refused(make(**{part: schema}), f"/{part}/$defs", "top-level $defs")


def test_soft_keywords_are_valid_parameter_names() -> None:
    contract = TaskContract(make({"match": {}, "type": {}, "case": {}}))
    assert contract.parameters == ("match", "type", "case")


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        pytest.param(
            make({"class": {}}),
            "/params/properties/class",
            "is a Python keyword",
            id="keyword-param",
        ),
        pytest.param(
            make(required=("x", "ghost")),
            "/params/required/1",
            "'ghost' is not declared",
            id="required-undeclared",
        ),
        pytest.param(
            make({"x": {"$ref": "https://example.com/x.json"}}),
            "/params/properties/x/$ref",
            "remote reference",
            id="https-ref",
        ),
        pytest.param(
            make({"x": {"$ref": "HTTP://example.com/x.json#/A"}}),
            "/params/properties/x/$ref",
            "remote reference",
            id="http-ref-uppercase",
        ),
        pytest.param(
            make(returns={"type": "array", "items": {"$ref": "http://e.com/i"}}),
            "/returns/items/$ref",
            "remote reference",
            id="remote-ref-in-returns",
        ),
        pytest.param(
            make({"x": {"$ref": "other.json#/A"}}),
            "/params/properties/x/$ref",
            "unsupported reference",
            id="relative-file-ref",
        ),
        pytest.param(
            make({"x": {"$ref": "#/params/properties/y"}}),
            "/params/properties/x/$ref",
            "only local '#/$defs/...'",
            id="ref-outside-defs",
        ),
        pytest.param(
            make({"x": {"$ref": "#/$defs/Missing"}}, defs={"Present": {}}),
            "/params/properties/x/$ref",
            "does not resolve",
            id="unresolvable-def",
        ),
        pytest.param(
            make({"x": {"$id": "urn:x", "type": "integer"}}),
            "/params/properties/x/$id",
            "$id is not supported",
            id="id-in-subschema",
        ),
        pytest.param(
            make(defs={"A": {"anyOf": [{"$anchor": "here"}]}}),
            "/$defs/A/anyOf/0/$anchor",
            "$anchor is not supported",
            id="anchor-in-defs",
        ),
        pytest.param(
            make({"x": {"type": "integer", "default": "zero"}}),
            "/params/properties/x/default",
            "default does not match",
            id="bad-default",
        ),
        pytest.param(
            make({"x": {"type": "string", "format": "uuid", "default": "nope"}}),
            "/params/properties/x/default",
            "is not a 'uuid'",
            id="bad-format-default",
        ),
        pytest.param(
            make(
                {"x": {"$ref": "#/$defs/C", "default": "fax"}},
                defs={"C": {"enum": ["email", "sms"]}},
            ),
            "/params/properties/x/default",
            "is not one of",
            id="bad-ref-default",
        ),
        pytest.param(
            make(options={"soft_time_limit": 10, "time_limit": 10}),
            "/options/soft_time_limit",
            "must be lower than time_limit",
            id="soft-eq-hard",
        ),
        pytest.param(
            make(options={"soft_time_limit": 20.5, "time_limit": 10}),
            "/options/soft_time_limit",
            "must be lower than time_limit",
            id="soft-gt-hard",
        ),
    ],
)
def test_semantic_rules(document: Any, path: str, fragment: str) -> None:
    assert_refused(document, path, fragment)


@pytest.mark.parametrize("name", ["default", "const", "enum", "examples", "required"])
def test_property_named_like_a_data_keyword_still_has_its_ref_checked(name: str) -> None:
    thing = {"type": "object", "properties": {name: {"$ref": "#/$defs/Missing"}}}
    assert_refused(
        make(defs={"Thing": thing}), f"/$defs/Thing/properties/{name}/$ref", "does not resolve"
    )
    assert_refused(make(defs={name: {"$ref": "https://e.com/s"}}), f"/$defs/{name}/$ref", "remote")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "default": {"$ref": "https://evil.example/x.json"}},
        {"const": {"$ref": "#/$defs/Missing"}},
        {"enum": [{"$ref": "other.json"}, {"$id": "urn:data"}]},
        {"examples": [{"$ref": "http://example.com/"}]},
    ],
    ids=["default", "const", "enum", "examples"],
)
def test_ref_inside_data_values_is_not_a_reference(schema: dict[str, Any]) -> None:
    assert TaskContract(make({"x": schema})).parameters == ("x",)


@pytest.mark.parametrize("extra", [{}, {"default": "a"}], ids=["no-default", "with-default"])
def test_ref_to_a_non_schema_location_is_refused(extra: dict[str, Any]) -> None:
    document = make(
        {"kind": {"$ref": "#/$defs/Kind/enum/0", **extra}}, defs={"Kind": {"enum": ["a"]}}
    )
    assert_refused(document, "/params/properties/kind/$ref", "")


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "string", "pattern": "\\p{L}+"}, "/params/properties/x/pattern"),
        (
            {"type": "object", "patternProperties": {"\\p{Lu}": {}}},
            "/params/properties/x/patternProperties/\\p{Lu}",
        ),
    ],
    ids=["pattern", "patternProperties"],
)
def test_pattern_python_cannot_match_is_refused(schema: dict[str, Any], path: str) -> None:
    """ECMA-262 allows \\p{...}; the reference validator's `re` does not, so such a
    contract could never be checked: refused at publish, not at the first message."""
    assert_refused(make({"x": schema}), path, "Python re")


def test_pattern_in_data_values_is_not_checked() -> None:
    assert TaskContract(make({"x": {"default": "\\p{L}", "examples": [{"pattern": "["}]}}))


def test_several_problems_are_reported_together_sorted_by_path() -> None:
    document = make(
        {"class": {"type": "integer"}, "y": {"$ref": "https://e.com/s"}},
        required=("ghost",),
        options={"soft_time_limit": 5, "time_limit": 1},
    )
    assert [v.path for v in refusal(document)] == [
        "/options/soft_time_limit",
        "/params/properties/class",
        "/params/properties/y/$ref",
        "/params/required/0",
    ]


def test_contract_error_names_the_task_and_lists_violations() -> None:
    with pytest.raises(ContractError) as info:
        TaskContract(make(required=("ghost",)))
    assert info.value.message == "contract for 'demo.task' is invalid"
    assert info.value.violations == [
        Violation(
            path="/params/required/0",
            message="required parameter 'ghost' is not declared in params.properties",
        )
    ]


def test_equality_and_hash_follow_the_fingerprint() -> None:
    document = make({"a": {"type": "integer"}, "b": {}}, required=("a",))
    first = TaskContract(document)
    same = TaskContract(json.loads(json.dumps(document, indent=4)))
    other = TaskContract(make({"b": {}, "a": {"type": "integer"}}, required=("a",)))
    assert first == same
    assert hash(first) == hash(same)
    assert len({first, same, other}) == 2
    assert first != other
    assert first != first.fingerprint


def test_to_dict_returns_an_independent_copy() -> None:
    document = make({"a": {"type": "integer"}})
    contract = TaskContract(document)
    document["params"]["properties"]["b"] = {}
    copied = contract.to_dict()
    copied["task"] = "changed"
    copied["params"]["properties"].clear()
    assert contract.task == "demo.task"
    assert contract.parameters == ("a",)
    assert contract.to_dict() == make({"a": {"type": "integer"}})


@pytest.mark.parametrize("text", ["[]", "1", '"contract"', "null", "true"])
def test_from_json_refuses_non_objects(text: str) -> None:
    with pytest.raises(ContractError) as info:
        TaskContract.from_json(text)
    assert info.value.violations == [Violation(path="", message="a contract is a JSON object")]


XYZ = make(
    {"x": {"type": "integer"}, "y": {"type": "string"}, "z": {"type": "boolean"}}, required=("x",)
)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((1, "a"), None, {"x": 1, "y": "a"}),
        ((), {"z": True, "x": 1}, {"x": 1, "z": True}),
        ((1,), {"z": False}, {"x": 1, "z": False}),
        ((1, "a", True), {}, {"x": 1, "y": "a", "z": True}),
        ((), None, {}),
    ],
    ids=["positional", "keyword", "mixed", "all-positional", "empty"],
)
def test_bind(args: tuple[Any, ...], kwargs: Any, expected: dict[str, Any]) -> None:
    assert TaskContract(XYZ).bind(args, kwargs) == expected


def test_bind_refuses_too_many_positional_arguments() -> None:
    with pytest.raises(CallValidationError) as info:
        TaskContract(XYZ).bind((1, "a", True, 4))
    [violation] = info.value.violations
    assert violation.path == ""
    assert "takes 3 positional argument(s) but 4 were given" in violation.message


def test_bind_refuses_a_parameter_given_positionally_and_by_keyword() -> None:
    with pytest.raises(CallValidationError) as info:
        TaskContract(XYZ).bind((1, "a"), {"y": "b", "z": True})
    assert info.value.violations == [
        Violation(path="/y", message="got multiple values for argument 'y'")
    ]


def _address() -> dict[str, Any]:
    return {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


def _order() -> dict[str, Any]:
    customer = {
        "id": UUID_B,
        "email": "ada@example.com",
        "name": "Ada",
        "phone": None,
        "address": _address(),
    }
    item = {"sku": "ABC-1234", "quantity": 2, "unit_price": {"amount": 12.5, "currency": "EUR"}}
    card = {"kind": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    return {
        "id": UUID_A,
        "customer": customer,
        "items": [item],
        "shipping_address": None,
        "payment_method": card,
        "placed_at": "2024-05-01T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("orders/process_order", (_order(),), {"priority": 9}),
        ("orders/bulk_import", ([_order(), _order()],), {"dry_run": True}),
        ("orders/get_order_status", (UUID_A,), None),
        ("orders/cancel_order", (UUID_A, "out_of_stock"), {"comment": None}),
        (
            "orders/refund_payment",
            (UUID_A, {"amount": 5, "currency": "USD"}, {"kind": "wallet", "provider": "paypal"}),
            None,
        ),
        ("notifications/send_email", ("a@example.com", "Hi", "Body"), {"cc": ["b@example.com"]}),
        ("notifications/send_sms", ("+4915112345678", "hello"), None),
        ("notifications/schedule_digest", (UUID_A, "2024-05-01T08:00:00+02:00"), {"max_items": 50}),
        (
            "notifications/notify_order_status",
            (
                {"id": UUID_B, "email": "ada@example.com", "name": "Ada", "address": _address()},
                UUID_A,
                "shipped",
            ),
            {"channel": "sms"},
        ),
    ],
)
def test_valid_example_calls_pass(name: str, args: tuple[Any, ...], kwargs: Any) -> None:
    contract = shop(name)
    call = contract.bind(args, kwargs)
    assert contract.params_violations(call) == []
    contract.validate_params(call)


def _broken(change: Any) -> dict[str, Any]:
    call = {"order": _order(), "priority": 1}
    change(call)
    return call


@pytest.mark.parametrize(
    ("call", "path", "fragment"),
    [
        (
            _broken(lambda c: c["order"]["items"][0].update(quantity="2")),
            "/order/items/0/quantity",
            "'2' is not of type 'integer'",
        ),
        (
            _broken(lambda c: c["order"]["items"][0].update(quantity=0)),
            "/order/items/0/quantity",
            "less than the minimum of 1",
        ),
        (_broken(lambda c: c["order"].pop("customer")), "/order", "'customer' is a required"),
        (_broken(lambda c: c.pop("order")), "", "'order' is a required property"),
        (_broken(lambda c: c.update(rush=True)), "", "'rush' was unexpected"),
        (_broken(lambda c: c["order"].update(coupon="X")), "/order", "'coupon' was unexpected"),
        (_broken(lambda c: c.update(priority=10)), "/priority", "greater than the maximum of 9"),
        (
            _broken(lambda c: c["order"].update(placed_at="yesterday")),
            "/order/placed_at",
            "is not a 'date-time'",
        ),
        (_broken(lambda c: c["order"].update(id="not-a-uuid")), "/order/id", "is not a 'uuid'"),
        (
            _broken(lambda c: c["order"]["customer"].update(email="ada.example.com")),
            "/order/customer/email",
            "is not a 'email'",
        ),
        (
            _broken(lambda c: c["order"]["customer"]["address"].update(country="de")),
            "/order/customer/address/country",
            "does not match",
        ),
    ],
    ids=[
        "wrong-type",
        "below-minimum",
        "missing-nested",
        "missing-param",
        "unknown-param",
        "unknown-nested",
        "above-maximum",
        "date-time",
        "uuid",
        "email",
        "pattern",
    ],
)
def test_params_violations_point_into_the_call(call: Any, path: str, fragment: str) -> None:
    contract = shop("orders/process_order")
    found = contract.params_violations(call)
    assert any(v.path == path and fragment in v.message for v in found), found
    with pytest.raises(CallValidationError) as info:
        contract.validate_params(call)
    assert info.value.message == "arguments of orders.process_order break its contract"
    assert info.value.violations == found


def test_several_call_violations_are_all_reported() -> None:
    call = {"order": _order(), "priority": -1, "rush": True}
    call["order"]["items"][0]["quantity"] = "2"
    call["order"]["placed_at"] = "2024-13-01T00:00:00Z"
    call["order"]["customer"]["email"] = "nobody"
    paths = [v.path for v in shop("orders/process_order").params_violations(call)]
    assert paths == [
        "",
        "/order/customer/email",
        "/order/items/0/quantity",
        "/order/placed_at",
        "/priority",
    ]


def test_discriminated_union_violation_points_at_the_bad_field() -> None:
    call = _broken(lambda c: c["order"]["payment_method"].update(last4="42"))
    found = shop("orders/process_order").params_violations(call)
    assert [v.path for v in found] == ["/order/payment_method/last4"]


def test_nullable_object_violation_points_inside_the_object() -> None:
    call = _broken(lambda c: c["order"].update(shipping_address={"line1": "x"}))
    found = shop("orders/process_order").params_violations(call)
    assert found
    assert all(v.path == "/order/shipping_address" for v in found)
    assert all("required property" in v.message for v in found)


def test_an_unknown_union_tag_reports_the_union_itself() -> None:
    call = _broken(lambda c: c["order"].update(payment_method={"kind": "crypto"}))
    found = shop("orders/process_order").params_violations(call)
    assert [v.path for v in found] == ["/order/payment_method"]
    assert "not valid under any of the given schemas" in found[0].message


@pytest.mark.xfail(strict=True, reason=FALSE_PATH_BUG)
def test_false_subschema_violation_points_at_the_property() -> None:
    contract = TaskContract(make({"x": {}, "legacy": False}))
    assert [v.path for v in contract.params_violations({"legacy": 1})] == ["/legacy"]


def test_validate_returns() -> None:
    contract = shop("orders/process_order")
    receipt = {
        "receipt_id": UUID_B,
        "order_id": UUID_A,
        "status": "paid",
        "total": {"amount": 25, "currency": "EUR"},
        "processed_at": "2024-05-01T12:00:01Z",
    }
    contract.validate_returns(receipt)
    bad = {**receipt, "receipt_id": "r-1", "total": {"amount": -1, "currency": "XXX"}, "extra": 1}
    with pytest.raises(CallValidationError) as info:
        contract.validate_returns(bad)
    assert info.value.message == "return value of orders.process_order breaks its contract"
    assert [(v.path, v.message) for v in info.value.violations] == [
        ("", "Additional properties are not allowed ('extra' was unexpected)"),
        ("/receipt_id", "'r-1' is not a 'uuid'"),
        ("/total/amount", "-1 is less than the minimum of 0"),
        ("/total/currency", "'XXX' is not one of ['EUR', 'USD', 'GBP', 'JPY', 'CHF']"),
    ]


def test_returns_violations_index_into_arrays() -> None:
    contract = shop("orders/bulk_import")
    result = {
        "total": 2,
        "imported": 1,
        "skipped": 1,
        "dry_run": False,
        "errors": [{"index": 0, "message": "bad sku"}, {"index": -1, "message": ""}],
    }
    assert [v.path for v in contract.returns_violations(result)] == [
        "/errors/1/index",
        "/errors/1/message",
    ]
    assert contract.returns_violations({**result, "errors": []}) == []
