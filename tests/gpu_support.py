"""For the GPU tests: benchmarks/gpu_check.py as a module, and a stand-in for CuPy on the CPU: NumPy's
arithmetic on arrays kept behind a wall, as a GPU's are.

`FakeDevice()` is a module that a test installs as `cupy` (`sys.modules`), so smoothl1 finds it as it
would find CuPy. Its arrays, `DeviceArray`s, are not NumPy arrays, and behave as CuPy's do where code
could tell the difference:
- NumPy's ufuncs and the NumPy functions that CuPy implements (`CUPY_FUNCTIONS`), called on them, run
  "on the device" and return device arrays (NEP 13 and 18, as CuPy's arrays dispatch); a NumPy function
  that CuPy lacks is a TypeError, as is a host array met in a device operation, or an implicit
  conversion to NumPy (`np.asarray(device_array)`);
- reductions give 0-d device arrays, not scalars, and frexp of inf or NaN gives an unspecified exponent
  (CUDA's), here the most negative int32;
- the only ways back are `get()` and a scalar (float(), int(), bool(), item()).
Every copy each way is counted, so a test sees that the device path is taken and which per-row arrays,
if any, came back. Streams, events and pinned memory are stand-ins that count their use.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

CUPY_FUNCTIONS = frozenset(
    {
        "all", "any", "append", "argsort", "bincount", "broadcast_to", "concatenate", "copyto",
        "count_nonzero", "cumsum", "diff", "flatnonzero", "full_like", "lexsort", "max", "min", "nonzero",
        "ones_like", "partition", "ravel", "repeat", "reshape", "searchsorted", "sort", "stack", "sum",
        "take", "unique", "where", "zeros_like",
    }
)  # fmt: skip


def load_gpu_check() -> Any:
    """benchmarks/gpu_check.py (a script, not a package): its data, cases and report comparison."""
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DeviceArray(NDArrayOperatorsMixin):
    """An array on the fake device: a NumPy array that only `get()` hands out."""

    __module__ = "cupy.fake"  # (smoothl1 knows CuPy's arrays by their type's module)

    def __init__(self, owner: FakeDevice, data: np.ndarray[Any, Any]) -> None:
        assert type(data) is np.ndarray
        self.owner, self._data = owner, data

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    nbytes = property(lambda self: self._data.nbytes)
    T = property(lambda self: DeviceArray(self.owner, self._data.T))

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"DeviceArray({self._data!r})"

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Implicit conversion to a NumPy array is not allowed: get() it first")

    def _scalar(self, convert: Any) -> Any:
        if self._data.size != 1:
            raise TypeError(f"only a one-element device array is a scalar, not one of {self._data.size}")
        self.owner.scalars_back += 1
        return convert(self._data.reshape(()).item())

    def __bool__(self) -> bool:
        return self._scalar(bool)  # type: ignore[no-any-return]

    def __float__(self) -> float:
        return self._scalar(float)  # type: ignore[no-any-return]

    def __int__(self) -> int:
        return self._scalar(int)  # type: ignore[no-any-return]

    def __index__(self) -> int:
        if self._data.ndim or self._data.dtype.kind not in "iu":
            raise TypeError("only an integer scalar array is an index")
        return self._scalar(int)  # type: ignore[no-any-return]

    def item(self) -> Any:
        return self._scalar(lambda value: value)

    def tolist(self) -> Any:
        raise TypeError("a device array has no tolist here: get() it first")

    def get(self, stream: Any = None) -> np.ndarray[Any, Any]:
        """Copy to the host, as CuPy's `get` does: counted."""
        self.owner.copies_back.append(self._data.size)
        return self._data.copy()

    def set(self, host: np.ndarray[Any, Any], stream: Any = None) -> None:
        """Copy a host array here, as CuPy's `set` does (asynchronously on `stream`): counted."""
        if type(host) is not np.ndarray or host.dtype != self.dtype or host.shape != self.shape:
            raise TypeError("set takes a NumPy array of the same dtype and shape")
        self.owner.copies_there.append(host.size)
        self._data[...] = host

    def __iter__(self) -> Any:
        return (DeviceArray(self.owner, np.asarray(value)) for value in self._data)

    def __getitem__(self, key: Any) -> Any:
        return self.owner.wrap(self._data[self.owner.index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._data[self.owner.index(key)] = self.owner.unwrap(value)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(self.owner.unwrap(array) for array in out)
        result = getattr(ufunc, method)(*(self.owner.unwrap(x) for x in inputs), **kwargs)
        if ufunc is np.frexp:  # CUDA leaves the exponent of inf and NaN unspecified
            mantissa, exponent = result
            result = mantissa, np.where(np.isfinite(self.owner.unwrap(inputs[0])), exponent, np.int32(-(2**31)))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return self.owner.wrap(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        if func.__name__ not in CUPY_FUNCTIONS:
            raise TypeError(f"no implementation of np.{func.__name__} for CuPy's arrays (here)")
        return self.owner.wrap(func(*self.owner.unwrap(list(args)), **self.owner.unwrap(kwargs)))

    def __getattr__(self, name: str) -> Any:  # methods: reshape, sum, astype, all, ...
        if name.startswith("__") or name in ("owner", "_data"):
            raise AttributeError(name)
        attribute = getattr(self._data, name)
        if not callable(attribute):
            return self.owner.wrap(attribute)
        return lambda *args, **kwargs: self.owner.wrap(
            attribute(*self.owner.unwrap(list(args)), **self.owner.unwrap(kwargs))
        )


class FakeEvent:
    """An event recorded on a fake stream: it counts the waits on it."""

    def __init__(self, owner: FakeDevice) -> None:
        self.owner = owner

    def synchronize(self) -> None:
        self.owner.events_waited += 1


class FakeStream:
    """A CUDA stream: a context manager that records events."""

    def __init__(self, owner: FakeDevice) -> None:
        self.owner = owner
        owner.streams += 1

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def record(self) -> FakeEvent:
        return FakeEvent(self.owner)

    def synchronize(self) -> None:
        return None


class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError."""


class FakeDevice(types.ModuleType):
    """NumPy's namespace with its arrays on a fake device: `asarray` and `array` copy there (counted)."""

    def __init__(self) -> None:
        super().__init__("cupy")
        self.ndarray = DeviceArray
        self.copies_there: list[int] = []  # sizes of host arrays copied to the device
        self.copies_back: list[int] = []  # sizes of device arrays copied to the host
        self.scalars_back = 0
        self.free_bytes = 64 << 30
        self.pinned: list[int] = []  # sizes of the pinned host buffers allocated
        self.events_waited = 0  # waits on an event before a pinned buffer is written again
        self.streams = 0
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(
                getDeviceCount=lambda: 1, memGetInfo=lambda: (self.free_bytes, 80 << 30), getDevice=lambda: 0
            ),
            Stream=lambda non_blocking=False: FakeStream(self),
            alloc_pinned_memory=self._alloc_pinned,
            memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        )

    def _alloc_pinned(self, size: int) -> bytearray:
        self.pinned.append(size)
        return bytearray(size)

    def per_row_copies_back(self, rows: int) -> list[int]:
        """The copies back of at least `rows` elements: per-row arrays (never a state's few numbers)."""
        return [size for size in self.copies_back if size >= rows]

    def unwrap(self, value: Any) -> Any:
        """The NumPy array inside a device array; a host array in a device operation is CuPy's TypeError."""
        if isinstance(value, DeviceArray):
            return value._data
        if isinstance(value, np.ndarray):
            raise TypeError(f"a host array ({value.shape}) met a device array: copy it there with asarray first")
        if isinstance(value, list | tuple):
            return type(value)(self.unwrap(v) for v in value)
        if isinstance(value, dict):
            return {key: self.unwrap(v) for key, v in value.items()}
        return value

    def index(self, key: Any) -> Any:
        """An index: device arrays as theirs, host index arrays copied there first (as CuPy does)."""
        if isinstance(key, tuple):
            return tuple(self.index(part) for part in key)
        if isinstance(key, np.ndarray):
            self.copies_there.append(key.size)
            return key
        return self.unwrap(key)

    def wrap(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return DeviceArray(self, value)
        if isinstance(value, np.generic):  # CuPy gives 0-d arrays where NumPy gives scalars
            return DeviceArray(self, np.asarray(value))
        if isinstance(value, tuple):
            return tuple(self.wrap(v) for v in value)
        return value

    def get_default_memory_pool(self) -> Any:
        """CuPy's memory pool: here it keeps no free blocks."""
        return types.SimpleNamespace(free_bytes=lambda: 0)

    def asarray(self, value: Any, dtype: Any = None, blocking: bool = False) -> DeviceArray:
        if isinstance(value, DeviceArray):
            return value if dtype is None or value.dtype == dtype else value.astype(dtype)  # type: ignore[no-any-return]
        host = np.array(value, dtype=dtype)
        self.copies_there.append(host.size)
        return DeviceArray(self, host)

    def array(self, value: Any, dtype: Any = None) -> DeviceArray:
        if isinstance(value, DeviceArray):
            return value.copy()  # type: ignore[no-any-return]
        return self.asarray(value, dtype)

    def empty(self, shape: Any, dtype: Any = float) -> DeviceArray:
        """Memory not yet written: NaN where it is of floats, so that a read before a write shows."""
        return DeviceArray(
            self, np.full(shape, np.nan, dtype) if np.dtype(dtype).kind == "f" else np.empty(shape, dtype)
        )

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(np, name)
        if isinstance(attribute, np.ufunc | type) or not callable(attribute):
            return attribute  # ufuncs dispatch on the device arrays among their inputs
        return lambda *args, **kwargs: self.wrap(attribute(*self.unwrap(list(args)), **self.unwrap(kwargs)))
