"""A tiny synchronous future with `.then` chaining, the unit the DataLoaders hand to resolvers.

graphql-core 3 only understands awaitables, and driving Django's ORM from an event loop is not an
option, so resolvers return `SyncFuture`s and `DeferredExecutionContext` completes them once the
loaders have dispatched their batches. Everything runs on the request's own thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_PENDING, _FULFILLED, _REJECTED = 0, 1, 2


class SyncFuture:
    __slots__ = ("_state", "_value", "_callbacks")

    def __init__(self) -> None:
        self._state = _PENDING
        self._value: Any = None
        self._callbacks: list[Callable[[SyncFuture], None]] = []

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def resolved(cls, value: Any) -> SyncFuture:
        future = cls()
        future.set_result(value)
        return future

    @classmethod
    def rejected(cls, error: BaseException) -> SyncFuture:
        future = cls()
        future.set_exception(error)
        return future

    @classmethod
    def gather(cls, items: Iterable[Any]) -> SyncFuture:
        """A future of the list of values; plain values pass through, the first rejection wins."""
        items = list(items)
        combined = cls()
        results: list[Any] = [None] * len(items)
        # Count every future before attaching any callback: an already-settled one calls back at once,
        # and must not bring the count to zero while later futures are still pending.
        remaining = [sum(1 for item in items if isinstance(item, SyncFuture))]

        def settle(index: int, future: SyncFuture) -> None:
            if combined.done():
                return
            if future._state == _REJECTED:
                combined.set_exception(future._value)
                return
            results[index] = future._value
            remaining[0] -= 1
            if remaining[0] == 0:
                combined.set_result(results)

        for index, item in enumerate(items):  # plain values first, for the same reason
            if not isinstance(item, SyncFuture):
                results[index] = item
        for index, item in enumerate(items):
            if isinstance(item, SyncFuture):
                item._add_callback(lambda future, index=index: settle(index, future))
        if remaining[0] == 0 and not combined.done():
            combined.set_result(results)
        return combined

    # -- state ----------------------------------------------------------------------------------------
    def done(self) -> bool:
        return self._state != _PENDING

    def result(self) -> Any:
        if self._state == _PENDING:
            raise RuntimeError("SyncFuture is still pending; its loader was never dispatched")
        if self._state == _REJECTED:
            raise self._value
        return self._value

    def set_result(self, value: Any) -> None:
        if isinstance(value, SyncFuture):  # adopt the state of a returned future
            value._add_callback(self._adopt)
            return
        self._settle(_FULFILLED, value)

    def set_exception(self, error: BaseException) -> None:
        self._settle(_REJECTED, error)

    def _adopt(self, other: SyncFuture) -> None:
        self._settle(other._state, other._value)

    def _settle(self, state: int, value: Any) -> None:
        if self._state != _PENDING:
            raise RuntimeError("SyncFuture settled twice")
        self._state, self._value = state, value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def _add_callback(self, callback: Callable[[SyncFuture], None]) -> None:
        if self._state == _PENDING:
            self._callbacks.append(callback)
        else:
            callback(self)

    # -- chaining -------------------------------------------------------------------------------------
    def then(
        self,
        on_value: Callable[[Any], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> SyncFuture:
        """A new future of `on_value(value)` (or `on_error(error)`); a raised exception rejects it."""
        chained = SyncFuture()

        def run(source: SyncFuture) -> None:
            handler = on_value if source._state == _FULFILLED else on_error
            if handler is None:
                chained._settle(source._state, source._value)
                return
            try:
                outcome = handler(source._value)
            except Exception as error:
                chained.set_exception(error)
                return
            chained.set_result(outcome)

        self._add_callback(run)
        return chained

    def __repr__(self) -> str:
        state = {_PENDING: "pending", _FULFILLED: "fulfilled", _REJECTED: "rejected"}[self._state]
        return f"<SyncFuture {state}>"
