"""What the data plane would take from newer Pythons, made to work on 3.9 (Debian's PyPy).

Everything ``pylvs/core`` and ``pylvs/io`` import must run on Python 3.9, so that the data plane
can run on PyPy 3.9; the control plane may use newer Python. This module holds the few
replacements that needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["slotted_dataclass"]

T = TypeVar("T")

if TYPE_CHECKING:
    # For the type checker it is dataclass itself.
    from dataclasses import dataclass as slotted_dataclass
else:

    def slotted_dataclass(**kwargs: Any) -> Callable[[type[T]], type[T]]:
        """``@dataclass(...)`` with ``__slots__`` for its fields, on every Python: the dataclass
        is made, then made again as a class with ``__slots__`` (what newer Pythons' own slots
        option of ``dataclass`` does). Its methods must not use ``super()`` without arguments
        (it would name the first class)."""

        def wrap(cls: type[T]) -> type[T]:
            made = dataclasses.dataclass(**kwargs)(cls)
            names = [f.name for f in dataclasses.fields(made)]
            inherited: set[str] = set()
            for base in made.__mro__[1:-1]:
                inherited.update(getattr(base, "__slots__", ()))
            body = dict(made.__dict__)
            for name in names:
                body.pop(name, None)  # the defaults live in __init__ already
            body.pop("__dict__", None)
            body.pop("__weakref__", None)
            body["__slots__"] = tuple(n for n in names if n not in inherited)
            slotted = type(made)(made.__name__, made.__bases__, body)
            slotted.__qualname__ = made.__qualname__
            return slotted

        return wrap
