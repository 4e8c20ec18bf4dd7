"""Plain data across the sandbox boundary: the only thing the grader accepts from student code.

"The kernel computes, the grader judges" (design/AUTOGRADER.md): the student's
process hands back numbers, arrays, strings and containers of them, and the
trusted judge rebuilds fresh objects of known types from the bytes it
receives. Nothing a student defines (a float subclass whose ``__eq__`` lies,
an array subclass, a pickled object) survives the trip: the decoder builds
only ``None, bool, int, float, complex, str, bytes, list, tuple, dict, set,
frozenset, range, slice``, NumPy arrays and scalars of numeric dtypes and
CPU torch tensors, within size limits, and rejects anything else.

Callables are not data: they cross as *handles* (an id that the other side
resolves in its own process), see ``Handle``.

Messages are length-prefixed JSON on a stream socket. JSON (not pickle) so
that decoding can never run code.
"""

from __future__ import annotations

import base64
import builtins
import functools
import json
import math
import socket
import struct
from dataclasses import dataclass

import numpy as np

MAX_MESSAGE_BYTES = 64 * 2**20  # an answer bigger than this is refused, not transferred
MAX_DEPTH = 40
MAX_ITEMS = 2_000_000
MAX_INT_DIGITS = 4300  # CPython's own default limit for int <-> str conversion
NUMERIC_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64", "complex64", "complex128"}
TORCH_DTYPES = NUMERIC_DTYPES - {"uint16", "uint32", "uint64"} | {"bfloat16"}


class WireError(ValueError):
    """Bytes that are not a valid plain-data message (a broken or tampered channel)."""


class NotPlainData(TypeError):
    """An object that cannot cross the boundary as data (and is not callable)."""


class ChannelClosed(EOFError):
    """The other side of the socket is gone (its process ended or was killed)."""


@dataclass(frozen=True)
class Handle:
    """A reference to a callable that lives in the *other* process.

    `owner` is "kernel" (an object in the student's process: resolved by
    `name` in its namespace, or by `id` for objects its code returned) or
    "judge" (a function of the trusted grader, e.g. a lambda a test passes in).
    """

    owner: str
    id: int = 0
    name: str = ""
    label: str = ""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text) -> bytes:
    if not isinstance(text, str):
        raise WireError("expected base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise WireError(f"bad base64: {error}") from None


def encode(value, *, callable_to_handle=None, lenient: bool = False, depth: int = 0):
    """Turn `value` into a JSON-able tagged tree; callables go through `callable_to_handle`.

    With `lenient` (the student's side), subclasses of the plain types (a
    namedtuple, an OrderedDict, a torch Parameter) are sent as their base type:
    the receiver rebuilds base types anyway. Raises NotPlainData naming the
    first object that is neither data nor callable.
    """
    if depth > MAX_DEPTH:
        raise NotPlainData("nested more than 40 levels deep")
    if lenient:
        value = _plain_base(value)
    if isinstance(value, Handle):
        return ["h", value.owner, value.id, value.name, value.label]
    kind = type(value)
    encoder = _ENCODERS.get(id(kind))
    if encoder is not None:
        return encoder(value, lambda v: encode(v, callable_to_handle=callable_to_handle, lenient=lenient,
                                               depth=depth + 1))
    tree = _encode_numpy(value, kind)
    if tree is None:
        tree = _encode_torch(value, kind)
    if tree is not None:
        return tree
    if callable(value) and callable_to_handle is not None:
        return encode(callable_to_handle(value), depth=depth)
    raise NotPlainData(f"an object of type {_type_name(value)}")


def _encode_int(value: int, recurse) -> list:
    if abs(value).bit_length() > MAX_INT_DIGITS * 3.33:
        raise NotPlainData("an int with more than 4300 digits")
    return ["i", str(value)]


# the builtin types, by exact type: keyed by id() so that only the type itself matches (never a class of the
# other side through its own __hash__ or __eq__); `recurse` encodes what a container holds
_ENCODERS = {id(kind): encoder for kind, encoder in {
    type(None): lambda value, recurse: ["n"],
    bool: lambda value, recurse: ["b", value],
    int: _encode_int,
    float: lambda value, recurse: ["f", repr(value)],
    complex: lambda value, recurse: ["c", repr(value.real), repr(value.imag)],
    str: lambda value, recurse: ["s", value],
    bytes: lambda value, recurse: ["y", _b64(bytes(value))],
    bytearray: lambda value, recurse: ["y", _b64(bytes(value))],
    list: lambda value, recurse: ["l", [recurse(v) for v in value]],
    tuple: lambda value, recurse: ["t", [recurse(v) for v in value]],
    dict: lambda value, recurse: ["d", [[recurse(k), recurse(v)] for k, v in value.items()]],
    set: lambda value, recurse: ["set", [recurse(v) for v in value]],
    frozenset: lambda value, recurse: ["fs", [recurse(v) for v in value]],
    range: lambda value, recurse: ["r", value.start, value.stop, value.step],
    slice: lambda value, recurse: ["sl", recurse(value.start), recurse(value.stop), recurse(value.step)],
    type(Ellipsis): lambda value, recurse: ["e"],
}.items()}


def _encode_numpy(value, kind) -> list | None:
    """A NumPy scalar, array or dtype of a numeric dtype (NotPlainData for another dtype); None for the rest."""
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        dtype = value.dtype.name
        if dtype not in NUMERIC_DTYPES:
            raise NotPlainData(f"a NumPy scalar of dtype {dtype}")
        return ["ns", dtype, _b64(np.asarray(value).astype(value.dtype.newbyteorder("<")).tobytes())]
    if kind is np.ndarray:
        dtype = value.dtype.name
        if dtype not in NUMERIC_DTYPES:
            raise NotPlainData(f"a NumPy array of dtype {dtype}")
        little = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        return ["nd", dtype, list(value.shape), _b64(little.tobytes())]
    if kind is np.dtype or isinstance(value, np.dtype):
        if value.name not in NUMERIC_DTYPES:
            raise NotPlainData(f"the NumPy dtype {value.name}")
        return ["ndt", value.name]
    return None


def _encode_torch(value, kind) -> list | None:
    """A torch size, dtype, CPU device, CPU generator or dense tensor (NotPlainData for another dtype or
    device); None for the rest."""
    torch = torch_module()
    if torch is None:
        return None
    if kind is torch.Size:
        return ["tsz", [int(n) for n in value]]
    if kind is torch.dtype:
        name = str(value).replace("torch.", "")
        if name not in TORCH_DTYPES:
            raise NotPlainData(f"the torch dtype {name}")
        return ["tdt", name]
    if kind is torch.device:
        if value.type != "cpu":
            raise NotPlainData(f"the device {value}")
        return ["tdv", "cpu"]
    if kind is torch.Generator:
        if value.device.type != "cpu":
            raise NotPlainData("a generator that is not on the CPU")
        return ["tgn", encode(value.get_state().numpy())]
    if kind in (torch.Tensor, torch.nn.Parameter):
        return _encode_tensor(value, torch)
    return None


def _encode_tensor(value, torch) -> list:
    tensor = value.detach()
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise NotPlainData("a sparse or quantized tensor")
    dtype = str(tensor.dtype).replace("torch.", "")
    if dtype not in TORCH_DTYPES:
        raise NotPlainData(f"a tensor of dtype {dtype}")
    cpu = tensor.to("cpu").contiguous()
    if dtype == "bfloat16":
        raw = cpu.view(torch.int16).numpy().astype("<i2").tobytes()
    else:
        raw = np.ascontiguousarray(cpu.numpy(), dtype=cpu.numpy().dtype.newbyteorder("<")).tobytes()
    return ["pt", dtype, list(tensor.shape), _b64(raw), bool(value.requires_grad)]


_BASES = (bool, int, float, complex, str, bytes, tuple, list, dict, frozenset, set)


def _plain_base(value):
    """A subclass instance of a plain type as an instance of the base type itself."""
    kind = type(value)
    if kind in _BASES or value is None or isinstance(value, np.generic):
        return value
    for base in _BASES:
        if isinstance(value, base):
            if base is dict:
                return dict(value.items())
            return base(value) if base is not bool else bool(int(value))
    if isinstance(value, np.ndarray) and kind is not np.ndarray:
        return np.array(value)
    return value


def _type_name(value) -> str:
    kind = type(value)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", "?")
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


@functools.cache
def torch_module():
    """torch, imported on first use (the wire is imported where torch is not needed yet)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is pinned
        return None
    return torch


class _Budget:
    def __init__(self):
        self.items = 0

    def spend(self, n: int = 1):
        self.items += n
        if self.items > MAX_ITEMS:
            raise WireError("too many items")


def decode(tree, *, handle_to_callable=None, _depth: int = 0, _budget: _Budget | None = None):
    """Rebuild a value from `encode`'s tree, accepting only plain-data tags; raises WireError otherwise."""
    budget = _budget or _Budget()
    budget.spend()
    if _depth > MAX_DEPTH + 1:
        raise WireError("nested too deep")
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
        raise WireError("malformed value")
    tag, args = tree[0], tree[1:]
    decoding = _Decoding(handle_to_callable, _depth, budget)
    try:
        accepts, build = _DECODERS.get(tag, (None, None))
        if accepts is not None and accepts(args):
            return build(args, decoding)
    except (TypeError, ValueError, OverflowError) as error:
        if isinstance(error, WireError):
            raise
        raise WireError(f"bad {tag!r} value: {error}") from None
    raise WireError(f"unknown or malformed tag {tag!r}")


@dataclass
class _Decoding:
    """One decode call's context: what handles become, how deep it is, the items budget of the whole tree."""

    handle_to_callable: object
    depth: int
    budget: _Budget

    def recurse(self, tree):
        return decode(tree, handle_to_callable=self.handle_to_callable, _depth=self.depth + 1, _budget=self.budget)

    def items(self, trees: list) -> list:
        self.budget.spend(len(trees))
        return [self.recurse(t) for t in trees]


def _decode_str(args, decoding: _Decoding) -> str:
    decoding.budget.spend(len(args[0]) // 64)
    return str(args[0])


def _decode_dict(args, decoding: _Decoding) -> dict:
    decoding.budget.spend(len(args[0]))
    out = {}
    for pair in args[0]:
        if not isinstance(pair, list) or len(pair) != 2:
            raise WireError("malformed dict item")
        out[decoding.recurse(pair[0])] = decoding.recurse(pair[1])
    return out


def _decode_numpy_scalar(args, decoding: _Decoding):
    dtype = np.dtype(args[0]).newbyteorder("<")
    raw = _unb64(args[1])
    if len(raw) != dtype.itemsize:
        raise WireError("bad scalar size")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(args[0]))[0]


def _decode_tensor(args, decoding: _Decoding):
    torch = torch_module()
    if args[0] == "bfloat16":
        tensor = torch.from_numpy(_array("int16", args[1], args[2], decoding.budget)).view(torch.bfloat16).clone()
    else:
        tensor = torch.from_numpy(_array(args[0], args[1], args[2], decoding.budget))
    if args[3] and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _decode_generator(args, decoding: _Decoding):
    state = decode(args[0], _depth=decoding.depth + 1, _budget=decoding.budget)  # no handles in a state
    torch = torch_module()
    if not isinstance(state, np.ndarray) or state.dtype != np.uint8 or state.ndim != 1 or state.size > 10000:
        raise WireError("bad generator state")
    generator = torch.Generator()
    try:
        generator.set_state(torch.from_numpy(state.copy()))
    except RuntimeError as error:
        raise WireError(f"bad generator state: {error}") from None
    return generator


def _decode_handle(args, decoding: _Decoding):
    owner, ident, name, label = args
    if owner not in ("kernel", "judge") or type(ident) is not int or not isinstance(name, str) \
            or not isinstance(label, str) or len(name) > 200 or len(label) > 200:
        raise WireError("malformed handle")
    handle = Handle(owner, ident, name, label)
    return decoding.handle_to_callable(handle) if decoding.handle_to_callable else handle


def _one_list(args) -> bool:
    return len(args) == 1 and isinstance(args[0], list)


def _short_text(arg, limit: int) -> bool:
    return isinstance(arg, str) and len(arg) < limit


# tag -> (does `args` have the tag's shape, build the value from it); a tag not here, or `args` of another
# shape, is refused; TypeError, ValueError or OverflowError while building is a WireError too
_DECODERS = {
    "n": (lambda args: not args, lambda args, decoding: None),
    "b": (lambda args: len(args) == 1 and isinstance(args[0], bool), lambda args, decoding: args[0]),
    "i": (lambda args: len(args) == 1 and _short_text(args[0], MAX_INT_DIGITS + 2),
          lambda args, decoding: int(args[0])),
    "f": (lambda args: len(args) == 1 and _short_text(args[0], 40), lambda args, decoding: float(args[0])),
    "c": (lambda args: len(args) == 2 and all(_short_text(a, 40) for a in args),
          lambda args, decoding: complex(float(args[0]), float(args[1]))),
    "s": (lambda args: len(args) == 1 and isinstance(args[0], str), _decode_str),
    "y": (lambda args: len(args) == 1, lambda args, decoding: _unb64(args[0])),
    "l": (_one_list, lambda args, decoding: decoding.items(args[0])),
    "t": (_one_list, lambda args, decoding: tuple(decoding.items(args[0]))),
    "set": (_one_list, lambda args, decoding: set(decoding.items(args[0]))),
    "fs": (_one_list, lambda args, decoding: frozenset(decoding.items(args[0]))),
    "d": (_one_list, _decode_dict),
    "r": (lambda args: len(args) == 3 and all(type(a) is int for a in args), lambda args, decoding: range(*args)),
    "sl": (lambda args: len(args) == 3, lambda args, decoding: slice(*(decoding.recurse(a) for a in args))),
    "e": (lambda args: not args, lambda args, decoding: Ellipsis),
    "ns": (lambda args: len(args) == 2 and args[0] in NUMERIC_DTYPES, _decode_numpy_scalar),
    "nd": (lambda args: len(args) == 3 and args[0] in NUMERIC_DTYPES,
           lambda args, decoding: _array(args[0], args[1], args[2], decoding.budget)),
    "pt": (lambda args: len(args) == 4 and args[0] in TORCH_DTYPES and isinstance(args[3], bool), _decode_tensor),
    "ndt": (lambda args: len(args) == 1 and args[0] in NUMERIC_DTYPES, lambda args, decoding: np.dtype(args[0])),
    "tsz": (lambda args: len(args) == 1 and isinstance(args[0], list) and len(args[0]) <= 32
            and all(type(n) is int and 0 <= n < 2**62 for n in args[0]),
            lambda args, decoding: torch_module().Size(args[0])),
    "tdt": (lambda args: len(args) == 1 and args[0] in TORCH_DTYPES,
            lambda args, decoding: getattr(torch_module(), args[0])),
    "tdv": (lambda args: args == ["cpu"], lambda args, decoding: torch_module().device("cpu")),
    "tgn": (lambda args: len(args) == 1, _decode_generator),
    "h": (lambda args: len(args) == 4, _decode_handle),
}


def _array(dtype_name, shape, data, budget: _Budget):
    if not isinstance(shape, list) or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError("bad array shape")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    raw = _unb64(data)
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw):
        raise WireError("array size does not match its shape")
    budget.spend(len(raw) // 4096)
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype_name)).reshape(shape).copy()


# ---- framing -------------------------------------------------------------------------------

def _json_default(value):
    raise TypeError(f"not JSON: {type(value).__name__}")


BUILTIN_ERRORS = {name: obj for name, obj in vars(builtins).items()  # taken before any student code runs
                  if isinstance(obj, type) and issubclass(obj, Exception)}


def rebuild_exception(message: dict, fallback: type[Exception]) -> Exception:
    """An exception the other side sent ({"type": name, "message": text}) rebuilt as the builtin class it
    names, never as a class that side defined; any other becomes `fallback("Type: text")`."""
    kind, text = str(message.get("type", "Exception"))[:100], str(message.get("message", ""))[:2000]
    cls = BUILTIN_ERRORS.get(kind)
    if cls is not None:
        try:
            return cls(text)
        except Exception:  # noqa: BLE001 - exceptions with required extra arguments
            pass
    return fallback(f"{kind}: {text}")


def send(sock: socket.socket, message: dict) -> None:
    """Send one message (a dict of JSON values; encoded values inside)."""
    payload = json.dumps(message, separators=(",", ":"), default=_json_default).encode("utf-8")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise NotPlainData(f"a message of {len(payload) / 2**20:.0f} MB (limit {MAX_MESSAGE_BYTES / 2**20:.0f} MB)")
    sock.sendall(struct.pack("<I", len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ChannelClosed("the other process closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> dict:
    """Receive one message; raises ChannelClosed on EOF and WireError on anything malformed."""
    (size,) = struct.unpack("<I", _recv_exact(sock, 4))
    if size > MAX_MESSAGE_BYTES:
        raise WireError(f"a message of {size} bytes is over the limit")
    payload = _recv_exact(sock, size)
    try:
        message = json.loads(payload.decode("utf-8"), parse_constant=_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WireError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise WireError("a message must be an object with an 'op'")
    return message


def _constant(name):
    raise WireError(f"unexpected JSON constant {name}")
