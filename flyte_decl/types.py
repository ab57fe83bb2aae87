"""`flyte.types`: Flyte's type-engine names, accepted so programs that register transformers load.

Flyte turns every input and output into a literal through its `TypeEngine`, and a program extends it
by registering a `TypeTransformer` for its own type. flyte-decl passes values between actions
pickled (files and folders by reference, see `flyte_decl.io`), so a registered transformer is kept
but never called: any value that pickles crosses, whatever transformers say. The registry behaves
as Flyte's does otherwise (one transformer per type, ValueError on a second; `get_transformer`
searches the type's MRO)::

    class CoordTransformer(TypeTransformer[Coord]):
        def __init__(self):
            super().__init__("Coord", Coord)

    TypeEngine.register(CoordTransformer())
    TypeEngine.get_transformer(Coord).name      # "Coord"
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")


class TypeTransformerFailedError(TypeError, AssertionError, ValueError):
    """A value does not fit the type a transformer handles (Flyte's class: a TypeError and a ValueError)."""


class TypeTransformer(Generic[T]):
    """A conversion of one Python type to Flyte literals and back: `name` and `python_type`.

    Locally the conversion methods are never called (values travel pickled); subclasses override them
    for a Flyte cluster, where they are.
    """

    def __init__(self, name: str, t: type[T], enable_type_assertions: bool = True) -> None:
        self._name = name
        self._t = t
        self._type_assertions_enabled = enable_type_assertions

    @property
    def name(self) -> str:
        return self._name

    @property
    def python_type(self) -> type[T]:
        return self._t

    @property
    def type_assertions_enabled(self) -> bool:
        return self._type_assertions_enabled

    def assert_type(self, t: type[T], v: T) -> None:
        """TypeTransformerFailedError unless `v` is a `t` (parameterized generics are not checked)."""
        if isinstance(t, type) and not isinstance(v, t):
            raise TypeTransformerFailedError(f"Expected value of type {t} but got '{v}' of type {type(v)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, python_type={self._t!r})"


class TypeEngine:
    """The registry of transformers by Python type (Flyte's `TypeEngine`); see the module docstring."""

    _REGISTRY: ClassVar[dict[Any, TypeTransformer[Any]]] = {}

    @classmethod
    def register(cls, transformer: TypeTransformer[Any], additional_types: list[Any] | None = None) -> None:
        """Keep `transformer` for its type (and `additional_types`); ValueError when one is registered already."""
        for t in [transformer.python_type, *(additional_types or [])]:
            if t in cls._REGISTRY:
                raise ValueError(
                    f"Transformer {cls._REGISTRY[t].name} for type {t} is already registered."
                    f" Cannot override with {transformer.name}"
                )
            cls._REGISTRY[t] = transformer

    @classmethod
    def register_additional_type(
        cls, transformer: TypeTransformer[Any], additional_type: Any, override: bool = False
    ) -> None:
        """Also use `transformer` for `additional_type` (replacing another one only with `override`)."""
        if additional_type not in cls._REGISTRY or override:
            cls._REGISTRY[additional_type] = transformer

    @classmethod
    def get_transformer(cls, python_type: Any) -> TypeTransformer[Any]:
        """The transformer registered for `python_type` or the nearest class of its MRO; ValueError if none."""
        candidates = inspect.getmro(python_type) if inspect.isclass(python_type) else (python_type,)
        for candidate in candidates:
            if candidate in cls._REGISTRY:
                return cls._REGISTRY[candidate]
        raise ValueError(
            f"no type transformer is registered for {python_type!r} (flyte-decl passes values pickled, "
            "so none is needed to run locally)"
        )


class FlytePickle(Generic[T]):
    """Flyte's annotation for a value passed pickled: `FlytePickle[MyType]`. Locally every value is."""


__all__ = ["FlytePickle", "TypeEngine", "TypeTransformer", "TypeTransformerFailedError"]
