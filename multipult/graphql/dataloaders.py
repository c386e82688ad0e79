"""Per-request DataLoaders: one class per relation, batching and caching within one request.

`get_dataloaders()` makes a fresh `DataLoaders` registry for each request (the GraphQL view stores
it as `info.context.dataloaders`); a resolver asks it for a loader class and gets that request's
instance: `info.context.dataloaders[RolesByUserIdLoader].load(user.pk)`. Nothing is shared between
requests, and a loader refuses to be used from another thread than the one that created it.
`batch=False` gives the naive behaviour (one query per key) through the same code, the baseline of
the benchmark.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict, namedtuple
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import RawQuerySet

from dbops.engines import get_connector
from dbops.engines.per_key import KEY_ATTRIBUTE
from dbops.instrumentation.profiling import code_path, path_label
from multipult.core.models import AuditLog, DictionaryEntry, Role, StoredFile, User
from multipult.graphql.futures import SyncFuture

LoaderT = TypeVar("LoaderT", bound="DataLoader")


@dataclass
class LoaderStats:
    batches: int = 0
    keys: int = 0
    cache_hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "keys": self.keys, "cacheHits": self.cache_hits}


class DataLoader:
    """Collects keys, then loads them in one `batch_load` call; `load` returns a `SyncFuture`."""

    name: ClassVar[str] = ""

    def __init__(self, *, batch: bool = True) -> None:
        self.batch = batch
        self.stats = LoaderStats()
        self._cache: dict[Hashable, SyncFuture] = {}
        self._queue: list[Hashable] = []
        self._thread = threading.get_ident()

    def batch_load(self, keys: Sequence[Any]) -> Sequence[Any]:
        """Returns one value per key, in the order of `keys` (an Exception value fails that key)."""
        raise NotImplementedError

    def load(self, key: Hashable) -> SyncFuture:
        if threading.get_ident() != self._thread:
            raise RuntimeError(f"{type(self).__name__} belongs to another request's thread.")
        cached = self._cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        future = SyncFuture()
        self._cache[key] = future
        self._queue.append(key)
        if not self.batch:
            self.dispatch()
        return future

    def load_many(self, keys: Iterable[Hashable]) -> SyncFuture:
        return SyncFuture.gather([self.load(key) for key in keys])

    def dispatch(self) -> bool:
        """Loads every queued key in one batch; False when nothing was queued."""
        if not self._queue:
            return False
        keys, self._queue = self._queue, []
        self.stats.batches += 1
        self.stats.keys += len(keys)
        token = code_path.set(self._code_path())
        try:
            values = list(self.batch_load(keys))
            if len(values) != len(keys):
                raise RuntimeError(f"{type(self).__name__}: {len(values)} values for {len(keys)} keys.")
        except Exception as error:
            for key in keys:  # a failed key is not cached: a later load may retry it
                self._cache.pop(key).set_exception(error)
            return True
        finally:
            code_path.reset(token)
        for key, value in zip(keys, values, strict=True):
            future = self._cache[key]
            if isinstance(value, Exception):
                del self._cache[key]
                future.set_exception(value)
            else:
                future.set_result(value)
        return True

    def _code_path(self) -> str:
        # A batch runs outside any resolver; when one key is loaded eagerly (batch=False) name its field too.
        label = f"dataloader:{self.name or type(self).__name__}"
        field = code_path.get()
        return f"{path_label(field)} ({label})" if field is not None and not isinstance(field, str) else label


class DataLoaders:
    """The loaders of one request, created lazily per class."""

    def __init__(self, *, batch: bool = True) -> None:
        self.batch = batch
        self._loaders: dict[type[DataLoader], DataLoader] = {}

    def __getitem__(self, loader_class: type[LoaderT]) -> LoaderT:
        loader = self._loaders.get(loader_class)
        if loader is None:
            loader = self._loaders[loader_class] = loader_class(batch=self.batch)
        return loader  # type: ignore[return-value]

    def dispatch(self) -> bool:
        """Runs one round: every loader with queued keys loads them once. False when all were idle."""
        dispatched = False
        for loader in list(self._loaders.values()):
            dispatched = loader.dispatch() or dispatched
        return dispatched

    def stats(self) -> dict[str, dict[str, int]]:
        return {loader.name or type(loader).__name__: loader.stats.as_dict() for loader in self._loaders.values()}


def get_dataloaders(*, batch: bool = True) -> DataLoaders:
    """A fresh registry for one request; never reuse it for another request."""
    return DataLoaders(batch=batch)


class UserByIdLoader(DataLoader):
    """Key: (columns, user id); one query per distinct column set in the batch."""

    name = "userById"

    def batch_load(self, keys):
        users: dict[tuple, Any] = {}
        for columns, ids in _by_spec(keys).items():
            for user_id, user in User.objects.only(*columns).in_bulk(ids).items():
                users[(columns, user_id)] = user
        return [users.get(key) for key in keys]


class RowsPerKeyLoader(DataLoader):
    """Key: (columns, limit, parent id): at most `limit` rows of `model` per parent, in `ordering`, in one
    statement per distinct (columns, limit) of the batch (a LATERAL join on PostgreSQL)."""

    model: ClassVar[type[Model]]
    key_field: ClassVar[str]  # the lookup from `model` to the parent's id
    ordering: ClassVar[tuple[str, ...]]

    def batch_load(self, keys):
        rows: dict[tuple, list[Any]] = defaultdict(list)
        for (columns, limit), parent_ids in _by_spec(keys).items():
            queryset = self.model.objects.only(*columns).order_by(*self.ordering)
            selected = get_connector(queryset.db).rows_per_key(
                queryset, key_field=self.key_field, keys=parent_ids, limit=limit
            )
            for row in loaded_rows(selected, self.model, columns):
                rows[(columns, limit, getattr(row, KEY_ATTRIBUTE))].append(row)
        return [rows.get(key, []) for key in keys]


class RolesByUserIdLoader(RowsPerKeyLoader):
    name = "rolesByUserId"
    model, key_field, ordering = Role, "users", ("name", "id")


class UsersByRoleIdLoader(RowsPerKeyLoader):
    name = "usersByRoleId"
    model, key_field, ordering = User, "roles", ("id",)


class FilesByUploaderIdLoader(RowsPerKeyLoader):
    name = "filesByUploaderId"
    model, key_field, ordering = StoredFile, "uploaded_by", ("-created_at", "-id")


class RecentAuditLogsByActorIdLoader(RowsPerKeyLoader):
    name = "recentAuditLogsByActorId"
    model, key_field, ordering = AuditLog, "actor", ("-timestamp", "-id")


class EntriesByDictionaryIdLoader(RowsPerKeyLoader):
    name = "entriesByDictionaryId"
    model, key_field, ordering = DictionaryEntry, "dictionary", ("position", "key", "id")


def _by_spec(keys: Sequence[tuple]) -> dict[tuple, list[Any]]:
    """Groups (*spec, id) keys by their spec: the ids of each (columns[, limit])."""
    grouped: dict[tuple, list[Any]] = defaultdict(list)
    for *spec, key_id in keys:
        grouped[tuple(spec) if len(spec) > 1 else spec[0]].append(key_id)
    return grouped


class UnselectedColumnError(RuntimeError):
    """A loaded row was asked for a column of its model that its loader did not select.

    Not an AttributeError on purpose: graphene's default resolver (getattr with a default) would turn
    that into a silent null."""


@functools.cache
def _model_columns(model: type[Model]) -> dict[str, str]:
    """Field name and attribute name -> attribute name, for each concrete field (actor and actor_id -> actor_id)."""
    columns = {field.attname: field.attname for field in model._meta.concrete_fields}
    columns.update({field.name: field.attname for field in model._meta.concrete_fields})
    return columns


class LoadedRow:
    """What the row classes share: the model the row comes from, and `pk` (resolvers and `id` read it).

    Reading a column of the model that the row does not hold raises UnselectedColumnError; any other
    missing attribute is an AttributeError as usual (hasattr, getattr with a default, copy keep working)."""

    __slots__ = ()
    model: ClassVar[type[Model]]

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup failed: the held columns are the named tuple's own properties.
        model = getattr(type(self), "model", None)
        attname = _model_columns(model).get(name) if model is not None else None
        if attname is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        held = ", ".join(self._fields)
        if attname != name and attname in self._fields:
            raise UnselectedColumnError(
                f"{model.__name__}.{name}: a loaded {model.__name__} row holds the column {attname}, "
                f"not the related object {name} (it holds {held})."
            )
        raise UnselectedColumnError(
            f"{model.__name__}.{name}: the loader did not select the column {attname} "
            f"(its {model.__name__} row holds {held}); add it to the columns the loader selects."
        )

    def __reduce__(self):
        # The row classes are made at run time, so pickle cannot find them by name: rebuild from the model.
        return _loaded_row_rebuild, (self.model, self._fields, tuple(self))


def _loaded_row_rebuild(model: type[Model], names: tuple[str, ...], values: tuple) -> LoadedRow:
    return row_class(model, names)._make(values)


@functools.lru_cache(maxsize=512)  # bounded: each selection of a type's columns is a class
def row_class(model: type[Model], names: tuple[str, ...]) -> type:
    """A named tuple of `model`'s columns `names` (attribute names), which GraphQL types accept as `model`."""
    pk_index = names.index(model._meta.pk.attname)
    fields = namedtuple(f"{model.__name__}Row", names)
    attributes = {"__slots__": (), "model": model, "pk": property(lambda row: row[pk_index])}
    return type(fields.__name__, (fields, LoadedRow), attributes)


def loaded_rows(selected: Any, model: type[Model], columns: tuple[str, ...]) -> list[Any]:
    """The rows of a `rows_per_key` result as LoadedRows (columns and its key): one tuple per row, where a
    model instance costs a __dict__ and a ModelState, in the time and in the garbage collector."""
    if isinstance(selected, QuerySet):
        # The portable window form (engines without LATERAL): its ranking wrapper refuses values_list.
        names = (*columns, KEY_ATTRIBUTE)
        make = row_class(model, names)._make
        return [make([getattr(instance, name) for name in names]) for instance in selected]
    if not isinstance(selected, RawQuerySet):
        return list(selected)  # no keys: nothing was queried
    # As RawQuerySet's own iterable does, with the same converters, but without making model instances.
    connection = connections[selected.db]
    compiler = connection.ops.compiler("SQLCompiler")(selected.query, connection, selected.db)
    values = iter(selected.query)
    try:
        result_columns = selected.columns
        fields = [selected.model_fields.get(column) for column in result_columns]
        names = tuple(field.attname if field else column for field, column in zip(fields, result_columns, strict=True))
        converters = compiler.get_converters(
            [field.get_col(field.model._meta.db_table) if field else None for field in fields]
        )
        if converters:
            values = compiler.apply_converters(values, converters)
        return list(map(row_class(model, names)._make, values))
    finally:
        if selected.query.cursor:
            selected.query.cursor.close()
