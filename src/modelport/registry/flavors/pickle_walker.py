"""Walking a pickle's opcodes on inert values, to learn what model it holds without loading it.

What is learnt (:class:`PickleFacts`): the framework of the first framework class referenced,
the model's ``module.Class``, sklearn's ``_sklearn_version``, whether joblib wrote it, every
``module.name`` it imports (what unpickling would import and may call), and whether the walk
reached STOP. A damaged or hostile stream just ends the walk.
"""

from __future__ import annotations

import lzma
import math
import pickletools
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

from modelport.registry.flavors.streams import ByteSource, ChunkedReader, skip
from modelport.runtime import flavor_catalog
from modelport.runtime.flavor_info import is_shape

_MAX_TEXT = 4096

# What a damaged or hostile stream can raise while being walked: the walk stops, findings stay.
UNREADABLE = (
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    EOFError,
    OSError,
    RecursionError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


@dataclass
class PickleFacts:
    """What a walk learnt; filled in as the opcodes go by, so a cut-short walk keeps its findings."""

    framework: str | None = None  # flavor of the first framework class referenced (its pickle_modules)
    estimator: str | None = None  # "module.Class" of the model object
    sklearn_version: str | None = None
    joblib: bool = False
    saw_global: bool = False
    imports: set[str] = field(default_factory=set)  # "module.name" of every GLOBAL, STACK_GLOBAL, INST
    complete: bool = False  # reached STOP


class _Enough(Exception):
    """Everything worth knowing is known: stop reading."""


def scan_pickle(stream: IO[bytes], *, whole: bool = False) -> PickleFacts:
    """Walk a pickle up to STOP, or (unless ``whole``) until flavor, estimator and version are known.

    Detection stops early; listing what a pickle imports needs the ``whole`` walk, since an
    import can hide anywhere after the model's class.
    """
    facts = PickleFacts()
    try:
        _PickleWalker(ChunkedReader(stream), facts, flavor_catalog.pickle_frameworks(), stop_early=not whole).run()
        facts.complete = True
    except _Enough:
        pass
    except UNREADABLE:
        pass  # truncated, corrupt or not a pickle after all: keep what was found
    return facts


class _Global(NamedTuple):
    module: str
    name: str


@dataclass(eq=False)
class _Call:
    """Stands for whatever ``func(*args)`` would have built; ``state`` is what BUILD gave it."""

    func: Any
    args: Any
    state: Any = None


_OPAQUE = object()  # bytes, buffers, extension codes, persistent ids: never needed
_LITERAL_OPS = frozenset(
    {
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
    }
)
_OPAQUE_OPS = frozenset(
    {
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "NEXT_BUFFER",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
    }
)
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_JOBLIB_ARRAY = _Global("joblib.numpy_pickle", "NumpyArrayWrapper")


class _PickleWalker:
    """Replays pickle opcodes on a stack of inert values.

    Strings, numbers, tuples, lists and dicts are rebuilt (they carry the class names and
    ``_sklearn_version``); classes become :class:`_Global` names and every call a
    :class:`_Call` record. Nothing is imported, called or looked up, so a hostile pickle is just
    bytes here. joblib's in-line array data, which is not pickle, is stepped over.
    """

    def __init__(self, stream: ByteSource, facts: PickleFacts, frameworks: dict[str, str], stop_early: bool) -> None:
        self._stream = stream
        self._facts = facts
        self._frameworks = frameworks  # top-level module -> flavor
        self._stop_early = stop_early
        self._stack: list[Any] = []
        self._marks: list[list[Any]] = []
        self._memo: dict[int, Any] = {}

    def run(self) -> None:
        for opcode, arg, _ in pickletools.genops(self._stream):  # type: ignore[arg-type]  # genops needs only read and readline; typeshed asks for IO[bytes]
            self._step(opcode.name, arg)

    def _step(self, name: str, arg: Any) -> None:
        if name in _LITERAL_OPS:  # long texts (embedded data) are never names or versions
            too_long = isinstance(arg, str) and len(arg) > _MAX_TEXT
            self._stack.append(_OPAQUE if too_long else arg)
        elif name in _OPAQUE_OPS:
            self._stack.append(_OPAQUE)
        elif name in _CONSTANTS:
            self._stack.append(_CONSTANTS[name])
        else:
            match name:  # most frequent first: cases are tried in order
                case "MEMOIZE":
                    self._memo[len(self._memo)] = self._stack[-1]
                case "GET" | "BINGET" | "LONG_BINGET":
                    self._stack.append(self._memo[arg])
                case "MARK":
                    self._marks.append(self._stack)
                    self._stack = []
                case "EMPTY_DICT":
                    self._stack.append({})
                case "SETITEMS":
                    items = self._pop_mark()
                    self._set_items(self._stack[-1], items)
                case "SETITEM":
                    value = self._stack.pop()
                    key = self._stack.pop()
                    self._set_items(self._stack[-1], [key, value])
                case "EMPTY_LIST" | "EMPTY_SET":
                    self._stack.append([])
                case "APPENDS" | "ADDITEMS":
                    items = self._pop_mark()
                    self._extend(self._stack[-1], items)
                case "APPEND":
                    value = self._stack.pop()
                    self._extend(self._stack[-1], [value])
                case "TUPLE1" | "TUPLE2" | "TUPLE3":
                    size = int(name[-1])
                    members = tuple(self._stack[-size:])
                    if len(members) != size:
                        raise IndexError("stack underflow")
                    del self._stack[-size:]
                    self._stack.append(members)
                case "EMPTY_TUPLE":
                    self._stack.append(())
                case "BUILD":
                    state = self._stack.pop()
                    self._build(self._stack[-1], state)
                case "REDUCE" | "NEWOBJ":
                    args = self._stack.pop()
                    self._stack.append(_Call(self._stack.pop(), args))
                case "STACK_GLOBAL":
                    qualname = self._stack.pop()
                    module = self._stack.pop()
                    self._stack.append(self._global(module, qualname))
                case "PUT" | "BINPUT" | "LONG_BINPUT":
                    self._memo[arg] = self._stack[-1]
                case "TUPLE" | "FROZENSET":
                    members = tuple(self._pop_mark())
                    self._stack.append(members)
                case "LIST":
                    items = self._pop_mark()
                    self._stack.append(items)
                case "DICT":
                    items = self._pop_mark()
                    self._stack.append(self._set_items({}, items))
                case "GLOBAL":
                    self._stack.append(self._global(*arg.split(" ", 1)))
                case "INST":
                    cls = self._global(*arg.split(" ", 1))
                    args = tuple(self._pop_mark())
                    self._stack.append(_Call(cls, args))
                case "OBJ":
                    cls, *args = self._pop_mark()
                    self._stack.append(_Call(cls, tuple(args)))
                case "NEWOBJ_EX":
                    self._stack.pop()  # keyword arguments
                    args = self._stack.pop()
                    self._stack.append(_Call(self._stack.pop(), args))
                case "BINPERSID":
                    self._stack[-1] = _OPAQUE
                case "POP":
                    if self._stack:
                        self._stack.pop()
                    else:
                        self._pop_mark()
                case "POP_MARK":
                    self._pop_mark()
                case "DUP":
                    self._stack.append(self._stack[-1])
                case "PROTO" | "FRAME" | "READONLY_BUFFER" | "STOP":
                    pass
                case _:
                    raise ValueError(f"unknown opcode {name}")

    def _pop_mark(self) -> list[Any]:
        """Return the items above the last MARK; callers must not hold ``self._stack`` across it."""
        items = self._stack
        self._stack = self._marks.pop()
        return items

    @staticmethod
    def _extend(target: Any, items: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(items)

    def _set_items(self, target: Any, flat: list[Any]) -> Any:
        for key, value in zip(flat[::2], flat[1::2]):
            # sklearn's BaseEstimator.__getstate__ adds this to every estimator's state.
            found = key == "_sklearn_version" and isinstance(value, str)
            if found and not self._facts.sklearn_version:
                self._facts.sklearn_version = value
                self._stop_if_done()
            if isinstance(target, dict):
                target[key] = value
        return target

    def _global(self, module: Any, qualname: Any) -> _Global:
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise ValueError("class reference is not a pair of names")
        facts = self._facts
        facts.saw_global = True
        facts.imports.add(f"{module}.{qualname}")
        top = module.partition(".")[0]
        facts.joblib = facts.joblib or top == "joblib"
        flavor = self._frameworks.get(top)
        if flavor is not None:
            facts.framework = facts.framework or flavor
            helper = _is_helper(module, qualname)
            if facts.estimator is None and flavor == facts.framework and not helper:
                facts.estimator = f"{module}.{qualname}"
            self._stop_if_done()
        return _Global(module, qualname)

    def _stop_if_done(self) -> None:
        facts = self._facts
        if self._stop_early and facts.estimator and (facts.framework != "sklearn" or facts.sklearn_version):
            raise _Enough

    def _build(self, target: Any, state: Any) -> None:
        if isinstance(target, _Call):
            target.state = state
            if target.func == _JOBLIB_ARRAY:
                self._skip_joblib_array(state)

    def _skip_joblib_array(self, state: Any) -> None:
        """joblib writes an array's bytes right after its wrapper, outside the pickle format."""
        shape = state.get("shape") if isinstance(state, dict) else None
        if not isinstance(shape, tuple) or not is_shape(shape) or -1 in shape:
            raise ValueError("joblib array wrapper without a shape")
        itemsize, has_objects = _dtype_layout(state.get("dtype"))
        if has_objects:  # written as a nested pickle instead
            _PickleWalker(self._stream, self._facts, self._frameworks, self._stop_early).run()
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            skip(self._stream, self._stream.read(1)[0])  # one byte giving the padding length
        skip(self._stream, math.prod(shape) * itemsize)


def _is_helper(module: str, qualname: str) -> bool:
    """Framework classes and functions that are parts of a model rather than the model."""
    subpackage = module.partition(".")[2]
    return qualname.startswith("_") or subpackage.startswith(("_", "utils"))


def _dtype_layout(dtype: Any) -> tuple[int, bool]:
    """Item size and whether it holds objects, from ``numpy.dtype``'s pickled arguments/state.

    numpy pickles a dtype as ``dtype("f8", False, True)`` plus a state tuple whose 6th item is
    the item size for flexible types (-1 otherwise) and whose 8th holds the flags, bit 0 meaning
    "contains Python objects".
    """
    if not (
        isinstance(dtype, _Call)
        and isinstance(dtype.func, _Global)
        and dtype.func.module.startswith("numpy")
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
        and isinstance(dtype.state, tuple)
        and len(dtype.state) >= 8
        and isinstance(dtype.state[5], int)
        and isinstance(dtype.state[7], int)
    ):
        raise ValueError("joblib array wrapper without a numpy dtype")
    code = re.fullmatch(r"[A-Za-z]+(\d+)", dtype.args[0])
    itemsize = dtype.state[5] if dtype.state[5] > 0 else int(code.group(1)) if code else None
    if itemsize is None:
        raise ValueError(f"unknown numpy dtype {dtype.args[0]!r}")
    return itemsize, bool(dtype.state[7] & 1)
