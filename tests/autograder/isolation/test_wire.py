"""The plain-data wire: only plain data crosses, rebuilt as fresh objects of known types."""

import json
import math

import numpy as np
import pytest
import torch

from autograder.isolation import wire

@pytest.mark.parametrize("value", [None, True, 3, -2**80, 1.5, float("inf"), 2 - 1j, "text", b"\x00\xff",
                                   [1, (2, 3)], {"a": {1, 2}}, frozenset([1]), range(3), slice(1, None),
                                   np.float32(2.5), np.int64(-3), np.arange(6.0).reshape(2, 3),
                                   np.array([True, False]), torch.tensor([1.0, 2.0], dtype=torch.float64),
                                   torch.Size([3, 4]), torch.float16, np.dtype("int32")])
def test_plain_data_round_trips(value):
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    elif isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    elif isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value


def test_generators_cross_as_their_state():
    generator = torch.Generator().manual_seed(7)
    copy = wire.decode(wire.encode(generator))
    assert torch.equal(torch.randn(3, generator=copy), torch.randn(3, generator=torch.Generator().manual_seed(7)))


def test_lying_subclasses_are_refused_or_flattened():
    class Liar(float):
        def __eq__(self, other):
            return True

    with pytest.raises(wire.NotPlainData):
        wire.encode(Liar(1.0))
    flattened = wire.decode(wire.encode(Liar(1.0), lenient=True))
    assert type(flattened) is float and flattened != 2.0
    with pytest.raises(wire.NotPlainData):
        wire.encode(np.array([object()], dtype=object))


@pytest.mark.parametrize("tree", [["x"], ["f", "1" * 50], ["i", "1" * 5000],
                                  ["nd", "object", [1], ""], ["nd", "float64", [2], "AAAA"], ["l", "notalist"],
                                  ["h", "root", 1, "", ""], ["d", [[["s", "k"]]]], "plain", []])
def test_malformed_or_unsafe_trees_are_rejected(tree):
    with pytest.raises(wire.WireError):
        wire.decode(tree)


@pytest.mark.parametrize("message, expected", [
    ({"type": "ValueError", "message": "bad"}, ValueError),
    ({"type": "ZeroDivisionError", "message": "x"}, ZeroDivisionError),
    ({"type": "Leak_3_5_7", "message": "secret"}, LookupError),  # a class of the other side's own: the fallback
    ({"type": "KeyboardInterrupt", "message": ""}, LookupError),  # not an Exception: never rebuilt as itself
    ({"type": "UnicodeDecodeError", "message": "needs 5 arguments"}, LookupError),
])
def test_exceptions_cross_as_builtin_classes_only(message, expected):
    error = wire.rebuild_exception(message, LookupError)
    assert type(error) is expected
    if expected is LookupError:
        assert str(error).startswith(message["type"] + ":")
