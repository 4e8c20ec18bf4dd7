"""The judge's end of the socket to the sandboxed kernel: requests with deadlines, callbacks served
while waiting, student callables seen as proxies, answers that are not plain data as opaque stand-ins,
and exceptions from the kernel rebuilt as builtin types (never as a class the student defined)."""

from __future__ import annotations

import select
import sys

import numpy as np

from ..isolation import wire
from .rng import advance_rng, rng_state


class KernelDied(RuntimeError):
    """The student's kernel is gone; the message says why."""


class StudentCodeError(RuntimeError):
    """The student's code raised an exception the judge does not reproduce by type."""


class NotTransferable(TypeError):
    """The student's answer is not plain data and cannot be checked outside the kernel."""


class Opaque:
    """Stands for a student answer that is not plain data: any use fails with the reason."""

    def __init__(self, name: str, why: str):
        self._name, self._why = name, why

    def _fail(self, *args, **kwargs):
        raise NotTransferable(f"{self._name} is {self._why}, which the grader cannot check: "
                              "answer with numbers, arrays, strings, lists, tuples or dicts")

    __call__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __float__ = __int__ = _fail
    __len__ = __iter__ = __getitem__ = __add__ = __sub__ = __mul__ = __truediv__ = __abs__ = __neg__ = _fail
    __hash__ = None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self):
        return f"<answer {self._name}: {self._why}, not checkable>"


class Proxy:
    """A student callable, seen from the judge: calls go to the kernel, plain data comes back."""

    def __init__(self, client: "KernelClient", handle: wire.Handle):
        self._client, self._handle = client, handle
        self.__name__ = self.__qualname__ = handle.name or handle.label or "student_function"

    def __call__(self, *args, **kwargs):
        return self._client.call(self._handle, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._client.getattr(self._handle, name)

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def __repr__(self):
        return f"<student function {self.__name__}>"


class KernelClient:
    """The judge's end of the socket: requests with deadlines, callbacks served while waiting."""

    def __init__(self, sandbox, *, call_timeout: float):
        self.sandbox, self.call_timeout = sandbox, call_timeout
        self.dead: str | None = None
        self.tampered: str | None = None
        self.judge_objects: dict[int, object] = {}
        self.next_id = 1
        self.timeouts = 0
        self.remote_calls = 0  # calls and attribute reads sent to the kernel (a test that made none is cacheable)

    # plumbing
    def _judge_handle(self, value):
        ident = self.next_id
        self.next_id += 1
        self.judge_objects[ident] = value
        return wire.Handle("judge", ident, "", str(getattr(value, "__name__", type(value).__name__))[:100])

    def _from_kernel(self, tree):
        return wire.decode(tree, handle_to_callable=self._callable_for)

    def _callable_for(self, handle: wire.Handle):
        if handle.owner == "judge":
            if handle.id not in self.judge_objects:
                raise wire.WireError("unknown judge handle")
            return self.judge_objects[handle.id]
        return Proxy(self, handle)

    def _to_kernel(self, value):
        def to_handle(obj):
            if isinstance(obj, Proxy):
                return obj._handle
            return self._judge_handle(obj)

        return wire.encode(value, callable_to_handle=to_handle)

    def die(self, reason: str, *, tampered: bool = False) -> KernelDied:
        if self.dead is None:
            self.dead = reason
            if tampered:
                self.tampered = reason
            self.sandbox.kill()
        return KernelDied(self.dead)

    def request(self, message: dict, *, timeout: float | None = None) -> dict:
        if self.dead:
            raise KernelDied(self.dead)
        timeout = self.call_timeout if timeout is None else timeout
        try:
            wire.send(self.sandbox.sock, message)
        except wire.NotPlainData as error:
            raise NotTransferable(f"the test's input is too large to send: {error}") from None
        except OSError:
            raise self._ended() from None
        deadline, interrupted = self.sandbox.deadline(timeout), False  # in the time the kernel had (sandbox.py)
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                if interrupted:
                    raise self.die(f"did not stop within {timeout:.0f} s, even when interrupted; it was killed")
                self.sandbox.interrupt()
                self.timeouts += 1
                interrupted, deadline = True, self.sandbox.deadline(3)
                continue
            ready, _, _ = select.select([self.sandbox.sock], [], [], remaining)
            if not ready:
                continue
            try:
                reply = wire.recv(self.sandbox.sock)
            except (wire.ChannelClosed, OSError):
                raise self._ended() from None
            except wire.WireError as error:
                raise self.die(f"sent malformed data to the grader ({error})", tampered=True) from None
            if reply["op"] == "callback":
                self._serve_callback(reply)
                continue
            if interrupted:
                reply["interrupted_after"] = timeout
            return reply

    def _ended(self) -> KernelDied:
        if self.dead is None:
            exit_ = self.sandbox.close()
            self.dead = f"the kernel {exit_.describe()}"
        return KernelDied(self.dead)

    def _serve_callback(self, message):
        try:
            target = self._from_kernel(message["target"])
            args = self._from_kernel(message["args"])
            kwargs = self._from_kernel(message["kwargs"])
            if not callable(target) or isinstance(target, Proxy) or not isinstance(args, list) \
                    or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                raise wire.WireError("malformed callback")
        except (wire.WireError, KeyError) as error:
            raise self.die(f"sent a malformed request to the grader ({error})", tampered=True) from None
        try:
            value = target(*args, **kwargs)
            reply = {"op": "return", "value": self._to_kernel(value)}
        except KernelDied:
            raise
        except Exception as error:  # the judge's function failed on the student's input: tell the student
            reply = {"op": "raise", "type": type(error).__name__, "message": str(error)[:2000]}
        try:
            wire.send(self.sandbox.sock, reply)
        except OSError:
            raise self._ended() from None

    # requests
    def run_cell(self, source: str, *, timeout: float) -> dict:
        reply = self.request({"op": "run", "source": source}, timeout=timeout)
        if reply.get("op") != "ran":
            raise self.die("answered a cell with the wrong message", tampered=True)
        return reply

    def exec_test(self, source: str, *, timeout: float) -> dict:
        reply = self.request({"op": "exec", "source": source}, timeout=timeout)
        if reply.get("op") != "ran":
            raise self.die("answered a test with the wrong message", tampered=True)
        return reply

    def describe(self, names: list[str]) -> dict:
        reply = self.request({"op": "describe", "names": names}, timeout=min(self.call_timeout, 30))
        values = reply.get("values")
        if reply.get("op") != "described" or not isinstance(values, dict) or set(values) != set(names):
            raise self.die("answered a question about its names with the wrong message", tampered=True)
        out = {}
        for name, description in values.items():
            if not isinstance(description, list) or not description:
                raise self.die("sent a malformed description", tampered=True)
            kind = description[0]
            try:
                if kind == "missing":
                    out[name] = ("missing", None)
                elif kind == "callable":
                    handle = wire.decode(description[1])
                    if not isinstance(handle, wire.Handle) or handle.owner != "kernel" or handle.name != name:
                        raise wire.WireError("bad handle")
                    out[name] = ("value", Proxy(self, handle))
                elif kind == "data":
                    out[name] = ("value", self._from_kernel(description[1]))
                elif kind == "opaque":
                    out[name] = ("value", Opaque(name, str(description[1])[:300]))
                else:
                    raise wire.WireError(f"unknown kind {kind!r}")
            except (wire.WireError, IndexError) as error:
                raise self.die(f"sent malformed data for {name!r} ({error})", tampered=True) from None
        return out

    def call(self, handle: wire.Handle, args: tuple, kwargs: dict):
        self.remote_calls += 1
        writeback = any(is_mutable(a) for a in args)
        try:
            message = {"op": "call", "target": wire.encode(handle), "args": self._to_kernel(list(args)),
                       "kwargs": self._to_kernel(dict(kwargs)), "rng": rng_state(), "writeback": writeback}
        except wire.NotPlainData as error:
            raise NotTransferable(f"the grader cannot pass {error} to student code") from None
        reply = self.request(message)
        advance_rng()
        _print_student_output(reply)
        if reply.get("interrupted_after"):
            raise TimeoutError(f"the student's function did not return within {reply['interrupted_after']:.0f} s")
        if reply.get("op") == "raise":
            raise _student_exception(reply)
        if reply.get("op") != "return":
            raise self.die("answered a call with the wrong message", tampered=True)
        if "opaque" in reply:
            raise NotTransferable(f"the student's function returned {str(reply['opaque'])[:200]}, which the grader "
                                  "cannot check: return numbers, arrays, strings, lists, tuples or dicts")
        try:
            value = self._from_kernel(reply["value"])
            if writeback and reply.get("args_after") is not None:
                write_back(list(args), self._from_kernel(reply["args_after"]))
        except (wire.WireError, KeyError) as error:
            raise self.die(f"returned malformed data ({error})", tampered=True) from None
        return value

    def getattr(self, handle: wire.Handle, name: str):
        self.remote_calls += 1
        reply = self.request({"op": "getattr", "target": wire.encode(handle), "name": name})
        if reply.get("op") == "raise":
            raise _student_exception(reply)
        if "opaque" in reply:
            return Opaque(name, str(reply["opaque"])[:300])
        try:
            return self._from_kernel(reply["value"])
        except (wire.WireError, KeyError) as error:
            raise self.die(f"returned malformed data ({error})", tampered=True) from None


def _student_exception(reply) -> Exception:
    if reply.get("type") == "KeyboardInterrupt":
        return TimeoutError("the student's code was interrupted (time limit)")
    return wire.rebuild_exception(reply, StudentCodeError)


def _print_student_output(reply) -> None:
    for stream, target in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        text = reply.get(stream)
        if isinstance(text, str) and text:
            target.write(text[:20000])


def is_mutable(value) -> bool:
    """True when the student's code could change `value` in place (so it must be written back)."""
    torch = wire.torch_module()
    if isinstance(value, (np.ndarray, list, dict, set)) or (torch is not None and isinstance(value, torch.Tensor)):
        return True
    if isinstance(value, tuple):
        return any(is_mutable(v) for v in value)
    return False


def write_back(originals, afters) -> None:
    """Apply in-place changes the student's code made to array arguments (and lists of numbers)."""
    torch = wire.torch_module()
    if isinstance(originals, (list, tuple)) and isinstance(afters, (list, tuple)) and len(originals) == len(afters):
        for original, after in zip(originals, afters):
            if isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
                if original.shape == after.shape and original.flags.writeable and \
                        not np.array_equal(original, after, equal_nan=True):
                    original[...] = after.astype(original.dtype, copy=False)
            elif torch is not None and isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
                if original.shape == after.shape and not torch.equal(original, after.to(original.dtype)):
                    with torch.no_grad():
                        original.copy_(after)
            elif isinstance(original, (list, tuple)):
                if isinstance(original, list) and isinstance(after, list) and not (
                        len(original) == len(after) and all(map(_same_kind, original, after))) \
                        and not any(callable(v) for v in after):
                    original[:] = after  # reordered, resized or retyped: the new contents, as in the kernel
                else:
                    write_back(original, after)
            elif isinstance(original, dict) and isinstance(after, dict):
                for key in list(original):
                    if key not in after:
                        del original[key]
                    elif _same_kind(original[key], after[key]):
                        write_back([original[key]], [after[key]])
                    else:
                        original[key] = after[key]
                for key in after:
                    if key not in original:
                        original[key] = after[key]
            elif isinstance(original, set) and isinstance(after, (set, frozenset)) and original != after:
                original.clear()
                original.update(after)




def _same_kind(original, after) -> bool:
    """True when `after` can be written into `original` in place (same shape and kind)."""
    torch = wire.torch_module()
    if isinstance(original, np.ndarray):
        return isinstance(after, np.ndarray) and original.shape == after.shape
    if torch is not None and isinstance(original, torch.Tensor):
        return isinstance(after, torch.Tensor) and original.shape == after.shape
    if isinstance(original, (list, tuple)):
        return (isinstance(after, (list, tuple)) and len(original) == len(after)
                and all(map(_same_kind, original, after)))
    return original == after if not callable(original) else True
