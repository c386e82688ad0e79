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
    # A callback is a callable, or a plain tuple that `then` (3 items) or `gather` (2 items) stores:
    # a response completes thousands of futures, and tuples cost less than closures to make and collect.
    __slots__ = ("_state", "_value", "_callbacks")

    def __init__(self) -> None:
        self._state = _PENDING
        self._value: Any = None
        self._callbacks: list | None = None  # made on the first callback: most futures get at most one

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
        results = list(items)
        combined = cls()
        # Count every future before attaching any callback: an already-settled one calls back at once,
        # and must not bring the count to zero while later futures are still pending.
        pending = [index for index, item in enumerate(results) if isinstance(item, SyncFuture)]
        if not pending:
            combined.set_result(results)
            return combined
        gathering = _Gathering(combined, results, len(pending))
        for index in pending:
            results[index]._add_callback((gathering, index))
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
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                self._run(callback)

    def _add_callback(self, callback: Callable[[SyncFuture], None] | tuple) -> None:
        if self._state != _PENDING:
            self._run(callback)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def _run(self, callback: Callable[[SyncFuture], None] | tuple) -> None:
        if type(callback) is not tuple:
            callback(self)
        elif len(callback) == 2:
            gathering, index = callback
            gathering.settle(index, self)
        else:
            chained, on_value, on_error = callback
            handler = on_value if self._state == _FULFILLED else on_error
            if handler is None:
                chained._settle(self._state, self._value)
                return
            try:
                outcome = handler(self._value)
            except Exception as error:
                chained.set_exception(error)
                return
            chained.set_result(outcome)

    # -- chaining -------------------------------------------------------------------------------------
    def then(
        self,
        on_value: Callable[[Any], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> SyncFuture:
        """A new future of `on_value(value)` (or `on_error(error)`); a raised exception rejects it."""
        chained = SyncFuture()
        self._add_callback((chained, on_value, on_error))
        return chained

    def __repr__(self) -> str:
        state = {_PENDING: "pending", _FULFILLED: "fulfilled", _REJECTED: "rejected"}[self._state]
        return f"<SyncFuture {state}>"


class _Gathering:
    """The state of one `gather`: its future, the list being filled, and how many items are pending."""

    __slots__ = ("combined", "results", "remaining")

    def __init__(self, combined: SyncFuture, results: list, remaining: int) -> None:
        self.combined, self.results, self.remaining = combined, results, remaining

    def settle(self, index: int, future: SyncFuture) -> None:
        if self.combined.done():
            return
        if future._state == _REJECTED:
            self.combined.set_exception(future._value)
            return
        self.results[index] = future._value
        self.remaining -= 1
        if self.remaining == 0:
            self.combined.set_result(self.results)
