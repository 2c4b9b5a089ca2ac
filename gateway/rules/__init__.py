"""The interface rules of spec section 6: pure functions of (record, state view, as-of)."""

from __future__ import annotations

from typing import Protocol, TypeVar

K_contra = TypeVar("K_contra", contravariant=True)


class Marks(Protocol[K_contra]):
    """The keys a file has shown so far (A9's placement ids, C3's transfers): a set, or, for a
    file decided a window at a time, one the flow keeps in the store for the file's
    transaction (:class:`gateway.flows.Tally`)."""

    def __contains__(self, key: object, /) -> bool:
        """Whether the file showed ``key`` already."""
        ...

    def add(self, key: K_contra, /) -> None:
        """Remember that the file showed ``key``."""
        ...
