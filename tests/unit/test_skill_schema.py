"""A skill's signature → JSON schema and argument validator, read from its source against the golden stubs."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemode.skills.schema import BadArguments, Unexpressible, skill_schema

STUBS = Path(__file__).resolve().parents[2] / "stubs"


def schema_of(signature: str, head: str = "") -> dict[str, object]:
    source = f'{head}\ndef f{signature}:\n    """Doc."""\n'
    return skill_schema("f", source, stubs=STUBS).input_schema


def test_json_types_defaults_and_required() -> None:
    schema = schema_of(
        "(name: str, *, n: int = 3, ratio: float = 0.5, on: bool = False, tags: list[str] | None = None, "
        "kind: Literal['a', 'b'] = 'a', extra: dict[str, int] = {}) -> str",
        "from typing import Literal",
    )
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert isinstance(props, dict)
    assert props["name"] == {"type": "string"}
    assert props["n"] == {"type": "integer", "default": 3}
    assert props["kind"] == {"enum": ["a", "b"], "type": "string", "default": "a"}
    assert props["tags"] == {"anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                             "default": None}  # fmt: skip
    assert props["extra"] == {"additionalProperties": {"type": "integer"}, "type": "object", "default": {}}


def test_stub_typed_dicts_by_module_attribute_and_by_import() -> None:
    by_attribute = schema_of("(customer: inventory.Customer) -> str", "from stubs import inventory")
    by_import = schema_of("(customer: Customer) -> str", "from stubs.inventory import Customer")
    assert by_attribute == by_import
    defs = by_attribute["$defs"]
    assert isinstance(defs, dict) and set(defs) == {"Address", "Customer"}
    assert defs["Customer"]["required"] == ["name", "email"]  # address is NotRequired in the stub


def test_the_skills_own_private_typed_dict() -> None:
    head = "from typing import TypedDict\nclass _Row(TypedDict, total=False):\n    sku: str\n    qty: int\n"
    schema = schema_of("(rows: list[_Row]) -> int", head)
    row = {"sku": {"type": "string"}, "qty": {"type": "integer"}}
    assert schema["$defs"] == {"_Row": {"type": "object", "additionalProperties": False, "properties": row}}


@pytest.mark.parametrize(
    ("signature", "head", "why"),
    [
        ("(*names: str) -> int", "", "*args"),
        ("(**kw: int) -> int", "", "**kwargs"),
        ("(a: int, /) -> int", "", "positional-only"),
        ("(at: datetime.datetime) -> str", "import datetime", "datetime.datetime"),
        ("(x: Thing) -> str", "", "'Thing'"),
        ("(x: dict[int, str]) -> str", "", "keys are str"),
        ("(x: inventory.Nope) -> str", "from stubs import inventory", "no type 'Nope'"),
        ("(x: Optional[int]) -> str", "", "'Optional'"),  # typing's names must be imported, as in the sandbox
        ("(x: os.PathLike) -> str", "import os", "os.PathLike"),
        ("(x: Literal[f()]) -> str", "from typing import Literal", "only str, int, bool and None"),
        ("(x: '__import__(\"os\")') -> str", "", "__import__"),
    ],
)
def test_what_has_no_schema_says_why(signature: str, head: str, why: str) -> None:
    with pytest.raises(Unexpressible) as caught:
        schema_of(signature, head)
    assert why in str(caught.value)


def test_recursive_typed_dict_is_unexpressible_not_a_crash() -> None:
    head = "from typing import TypedDict\nclass _Node(TypedDict):\n    kids: list[_Node]\n"
    with pytest.raises(Unexpressible, match="nested deeper"):
        schema_of("(tree: _Node) -> int", head)


def test_validation_names_every_bad_argument_and_converts_json() -> None:
    source = 'from stubs import inventory\ndef f(customer: inventory.Customer, n: int = 1) -> str:\n    """Doc."""\n'
    schema = skill_schema("f", source, stubs=STUBS)
    assert schema.validate({"customer": {"name": "a", "email": "b"}, "n": "2"}) == {
        "customer": {"name": "a", "email": "b"}, "n": 2,
    }  # fmt: skip
    with pytest.raises(BadArguments) as caught:
        schema.validate({"customer": {"name": "a", "address": {"city": 1}}, "n": "x", "m": 1})
    problems = caught.value.problems
    assert "customer.email: required argument missing" in problems
    assert "m: no such argument" in problems
    assert any(p.startswith("n: ") for p in problems)
    assert any(p.startswith("customer.address.") for p in problems)
