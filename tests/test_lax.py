"""Lenient conversion of declared inputs, rule by rule as pydantic's lax mode has them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from jacscale_core.lax import convert

CONVERTS = [
    (int, "7", 7),
    (int, " 7 ", 7),
    (int, "+7", 7),
    (int, "-7", -7),
    (int, "1_000", 1000),
    (int, "7.0", 7),
    (int, 7.0, 7),
    (int, True, 1),
    (float, "1.5", 1.5),
    (float, " 1.5 ", 1.5),
    (float, "1e3", 1000.0),
    (float, "1_0.5", 10.5),
    (float, 3, 3.0),
    (float, False, 0.0),
    (bool, "true", True),
    (bool, "TRUE", True),
    (bool, "yes", True),
    (bool, "on", True),
    (bool, "t", True),
    (bool, "Y", True),
    (bool, "1", True),
    (bool, "false", False),
    (bool, "No", False),
    (bool, "off", False),
    (bool, "f", False),
    (bool, "n", False),
    (bool, "0", False),
    (bool, 1, True),
    (bool, 0.0, False),
    (list[int], ["1", 2, "3"], [1, 2, 3]),
    (dict[str, float], {"a": "0.5"}, {"a": 0.5}),
    (int | None, "7", 7),
    (int | None, None, None),
    (int | str, "7", "7"),  # a member takes it as it is: no conversion
    (float | bool, "yes", True),
    (tuple[int, bool], ["1", "no"], (1, False)),
    (tuple[int, ...], ["1", "2"], (1, 2)),
]

REFUSES = [
    (int, "7.5"),
    (int, "1e3"),
    (int, "0x10"),
    (int, ""),
    (int, "seven"),
    (int, "７"),  # a full-width digit
    (int, 7.5),
    (float, ""),
    (float, "0x1"),
    (float, "１.５"),
    (bool, " true "),
    (bool, "2"),
    (bool, 2),
    (bool, 0.5),
    (str, 7),  # str stays strict, as in pydantic
    (str, True),
    (int | None, "null"),
    (list[int], ["1", "x"]),
]


@pytest.mark.parametrize(("annotation", "sent", "expected"), CONVERTS)
def test_converts_like_pydantic_lax_mode(annotation: Any, sent: Any, expected: Any) -> None:
    got = convert(sent, annotation)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("annotation", "sent"), REFUSES)
def test_refuses_what_pydantic_refuses_with_the_strict_message(annotation: Any, sent: Any) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        convert(sent, annotation)
    assert "Expected" in str(caught.value)


def test_values_of_the_declared_type_are_used_as_they_are() -> None:
    assert convert(3, int) == 3 and convert("x", str) == "x"
    assert convert([1, 2], list[int]) == [1, 2]
