"""For the GPU tests: benchmarks/gpu_check.py as a module, and a stand-in for CuPy on the CPU, NumPy's
arithmetic on arrays marked as living on a device.

`FakeDevice()` is a module-like namespace (what `backends.namespace("cupy")` returns) whose arrays
are `DeviceArray`s, a NumPy subclass. As with CuPy, NumPy's functions and ufuncs called on them
run "on the device" and return device arrays, mixing a device array with a host one is a TypeError,
and the only way back is `get()` (or a scalar: float(), int(), bool()). Every copy is counted, so a
test sees that the device path is taken and which per-row arrays, if any, came back.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

import numpy as np


def load_gpu_check() -> Any:
    """benchmarks/gpu_check.py (a script, not a package): its data, cases and report comparison."""
    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DeviceArray(np.ndarray):  # type: ignore[type-arg]
    """An array on the fake device."""

    owner: FakeDevice  # (not `device`: NumPy 2 arrays have a read-only one)

    def __array_finalize__(self, obj: Any) -> None:
        self.owner = getattr(obj, "owner", None)  # type: ignore[assignment]

    def __array_namespace__(self, api_version: Any = None) -> FakeDevice:
        return self.owner

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(self.owner.host_view(array) for array in out)
        result = getattr(ufunc, method)(*(self.owner.host_view(x) for x in inputs), **kwargs)
        return out[0] if out is not None and len(out) == 1 else self.owner.wrap(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        return self.owner.wrap(func(*self.owner.host_view(args), **self.owner.host_view(kwargs)))

    def get(self) -> np.ndarray[Any, Any]:
        """Copy to the host, as CuPy's `get` does: counted."""
        self.owner.copies_back.append(self.size)
        return np.array(self.view(np.ndarray))

    def __float__(self) -> float:
        self.owner.scalars_back += 1
        return float(self.view(np.ndarray))

    def __int__(self) -> int:
        self.owner.scalars_back += 1
        return int(self.view(np.ndarray))

    def __bool__(self) -> bool:
        self.owner.scalars_back += 1
        return bool(self.view(np.ndarray))

    def __index__(self) -> int:
        self.owner.scalars_back += 1
        return int(self.view(np.ndarray))

    def item(self, *args: Any) -> Any:
        self.owner.scalars_back += 1
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        raise TypeError("a device array has no tolist: get() it first")

    def set(self, host: np.ndarray[Any, Any], stream: Any = None) -> None:
        """Copy a host array here, as CuPy's `set` does (asynchronously on `stream`): counted."""
        self.owner.copies_there.append(host.size)
        self.view(np.ndarray)[...] = host

    def __getitem__(self, key: Any) -> Any:
        return self.owner.wrap(self.view(np.ndarray)[self.owner.host_view(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.view(np.ndarray)[self.owner.host_view(key)] = self.owner.host_view(value)


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


class FakeDevice(types.ModuleType):
    """NumPy's namespace with its arrays on a fake device: `asarray` and `array` copy there (counted)."""

    def __init__(self) -> None:
        super().__init__("fakecupy")
        self.copies_there: list[int] = []  # sizes of host arrays copied to the device
        self.copies_back: list[int] = []  # sizes of device arrays copied to the host
        self.scalars_back = 0
        self.free_bytes = 64 << 30
        self.pinned: list[int] = []  # sizes of the pinned host buffers allocated
        self.events_waited = 0  # waits on an event before a pinned buffer is written again
        self.streams = 0
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(memGetInfo=lambda: (self.free_bytes, 80 << 30), getDevice=lambda: 0),
            Stream=lambda non_blocking=False: FakeStream(self),
            alloc_pinned_memory=self._alloc_pinned,
        )

    def _alloc_pinned(self, size: int) -> bytearray:
        self.pinned.append(size)
        return bytearray(size)

    def per_row_copies_back(self, rows: int) -> list[int]:
        """The copies back of at least `rows` elements: per-row arrays (never a state's few numbers)."""
        return [size for size in self.copies_back if size >= rows]

    def host_view(self, value: Any) -> Any:
        """A device array as the NumPy array it wraps; a host array here is the mistake CuPy refuses."""
        if isinstance(value, DeviceArray):
            return value.view(np.ndarray)
        if isinstance(value, np.ndarray) and value.ndim > 0:
            raise TypeError("a host array met a device array: copy it there with asarray first")
        if isinstance(value, list | tuple):
            return type(value)(self.host_view(v) for v in value)
        if isinstance(value, dict):
            return {key: self.host_view(v) for key, v in value.items()}
        return value

    def wrap(self, value: Any) -> Any:
        if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
            wrapped = value.view(DeviceArray)
            wrapped.owner = self
            return wrapped
        if isinstance(value, np.generic):  # CuPy gives 0-d arrays where NumPy gives scalars
            return self.wrap(np.asarray(value))
        if isinstance(value, tuple):
            return tuple(self.wrap(v) for v in value)
        return value

    def get_default_memory_pool(self) -> Any:
        """CuPy's memory pool: here it keeps no free blocks."""
        return types.SimpleNamespace(free_bytes=lambda: 0)

    def asarray(self, value: Any, dtype: Any = None, blocking: bool = False) -> DeviceArray:
        if isinstance(value, DeviceArray):
            return value if dtype is None or value.dtype == dtype else value.astype(dtype)
        host = np.asarray(value, dtype=dtype)
        self.copies_there.append(host.size)
        return self.wrap(np.array(host))  # type: ignore[no-any-return]

    def array(self, value: Any, dtype: Any = None) -> DeviceArray:
        if isinstance(value, DeviceArray):
            return value.copy()  # type: ignore[no-any-return]
        return self.asarray(value, dtype)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(np, name)
        if callable(attribute) and not isinstance(attribute, type):  # functions and ufuncs, not dtypes
            return lambda *args, **kwargs: self.wrap(attribute(*self.host_view(args), **self.host_view(kwargs)))
        return attribute
