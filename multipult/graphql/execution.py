"""A graphql-core ExecutionContext that completes `SyncFuture`s instead of awaiting coroutines.

graphql-core 3 only defers work through awaitables; the ready-made sync adapters break on
graphql-core >= 3.2.10, so this one is owned here and pinned against graphql-core 3.2.8 by the
contract tests in tests/graphql/test_execution.py. Resolvers may return a `SyncFuture` (usually from
a DataLoader); the whole operation is first walked breadth-first, collecting keys in the loaders,
then `execute_operation` dispatches the loaders level by level until the result future settles:
one batch per loader per level, whatever the number of rows.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from graphene.types.resolver import dict_or_attr_resolver
from graphene.validation import depth_limit_validator
from graphene_django import DjangoObjectType
from graphql import FieldNode, GraphQLError, ValidationRule, located_error, specified_rules
from graphql.execution import ExecutionContext
from graphql.execution.execute import get_argument_values, get_field_def
from graphql.pyutils import Path, Undefined, is_iterable
from graphql.type import GraphQLField, GraphQLNonNull, is_leaf_type, is_non_null_type

from dbops.instrumentation.profiling import code_path, current_profile
from multipult.graphql.futures import SyncFuture


class IntrospectionForStaffRule(ValidationRule):
    """Refuses __schema and __type (not __typename): introspection is for staff, or with DEBUG on."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in ("__schema", "__type"):
            self.report_error(
                GraphQLError(f"Introspection ({node.name.value}) is only for staff users, or with DEBUG on.", node)
            )


def plain_leaf(field_def: GraphQLField) -> tuple[str, Any, Any, bool] | None:
    """(attribute, default, serialize, non-null) of a field that only reads an attribute into a scalar, else None."""
    if field_def.args:
        return None
    non_null = is_non_null_type(field_def.type)
    named = field_def.type.of_type if non_null else field_def.type
    if not is_leaf_type(named):
        return None
    resolve = field_def.resolve
    if resolve is DjangoObjectType.resolve_id:
        return "pk", None, named.serialize, non_null
    if isinstance(resolve, functools.partial) and resolve.func is dict_or_attr_resolver and not resolve.keywords:
        attname, default = resolve.args
        return attname, default, named.serialize, non_null
    return None


def validation_stages(*, introspection: bool = True) -> tuple[tuple, ...]:
    """The validation rules in stages, each run only on a document the stage before accepted: graphql-core's
    standard rules (fragment cycles among them), then the depth limit and, unless `introspection`, its
    refusal; so a refused query gets one error, not one per rule it breaks."""
    limits = (depth_limit_validator(max_depth=settings.GRAPHQL_MAX_DEPTH),)
    return (tuple(specified_rules), limits if introspection else (*limits, IntrospectionForStaffRule))


class DeferredExecutionContext(ExecutionContext):
    """Executes synchronously; values may be `SyncFuture`s that the context's DataLoaders settle."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Under the query profiler, each resolver runs with its field path set, so N+1 warnings name it.
        self._track_paths = current_profile() is not None
        # Most fields read one attribute into a scalar: those skip resolve info, path and completion.
        self._plain_leaves = not self._track_paths and self.middleware_manager is None
        self._leaf_plans: dict[tuple[str, str], tuple | None] = {}

    def execute_operation(self, operation, root_value):
        result = super().execute_operation(operation, root_value)
        if isinstance(result, SyncFuture):
            return self.wait(result)
        return result

    def wait(self, future: SyncFuture) -> Any:
        """Dispatches pending loader batches until `future` settles; raises its error if it failed."""
        dataloaders = getattr(self.context_value, "dataloaders", None)
        while not future.done():
            if dataloaders is None or not dataloaders.dispatch():
                raise GraphQLError("A resolver returned a future that no DataLoader of this request will settle.")
        return future.result()

    def execute_fields(self, parent_type, source_value, path, fields):
        results: dict[str, Any] = {}
        pending: list[str] = []
        for response_name, field_nodes in fields.items():
            read = self._plain_leaves and self._read_leaf(
                parent_type, source_value, field_nodes[0], results, response_name
            )
            if read:
                continue
            field_path = Path(path, response_name, parent_type.name)
            result = self.execute_field(parent_type, source_value, field_nodes, field_path)
            if result is not Undefined:
                results[response_name] = result
                if isinstance(result, SyncFuture):
                    pending.append(response_name)
        if not pending:
            return results

        def fill(values: list[Any]) -> dict[str, Any]:
            results.update(zip(pending, values, strict=True))
            return results

        return SyncFuture.gather(results[name] for name in pending).then(fill)

    def _read_leaf(self, parent_type, source, field_node, results: dict, response_name: str) -> bool:
        """Reads a plain scalar field into `results`; False leaves it (and any error) to execute_field."""
        key = (parent_type.name, field_node.name.value)
        try:
            plan = self._leaf_plans[key]
        except KeyError:
            field_def = get_field_def(self.schema, parent_type, field_node)
            plan = self._leaf_plans[key] = plain_leaf(field_def) if field_def else None
        if plan is None:
            return False
        attname, default, serialize, non_null = plan
        try:
            value = source.get(attname, default) if isinstance(source, dict) else getattr(source, attname, default)
            serialized = None if value is None else serialize(value)
        except Exception:
            return False
        if serialized is Undefined or (serialized is None and (non_null or value is not None)):
            return False
        results[response_name] = serialized
        return True

    def execute_fields_serially(self, parent_type, source_value, path, fields):
        # Mutations: each top-level field completes (loaders dispatched) before the next one starts.
        results: dict[str, Any] = {}
        for response_name, field_nodes in fields.items():
            field_path = Path(path, response_name, parent_type.name)
            result = self.execute_field(parent_type, source_value, field_nodes, field_path)
            if result is Undefined:
                continue
            results[response_name] = self.wait(result) if isinstance(result, SyncFuture) else result
        return results

    def execute_field(self, parent_type, source, field_nodes, path):
        field_def = get_field_def(self.schema, parent_type, field_nodes[0])
        if not field_def:
            return Undefined
        return_type = field_def.type
        resolve_fn = field_def.resolve or self.field_resolver
        if self.middleware_manager:
            resolve_fn = self.middleware_manager.get_field_resolver(resolve_fn)
        info = self.build_resolve_info(field_def, field_nodes, parent_type, path)

        def on_error(raw_error: BaseException) -> None:
            error = located_error(raw_error, field_nodes, path.as_list())
            self.handle_field_error(error, return_type)  # re-raises for non-null fields
            return None

        try:
            args = get_argument_values(field_def, field_nodes[0], self.variable_values)
            # Under the profiler, the field path covers resolving and completing (a lazy queryset runs then).
            token = code_path.set(path) if self._track_paths else None
            try:
                result = resolve_fn(source, info, **args)
                if isinstance(result, SyncFuture):
                    completed = result.then(
                        lambda value: self.complete_value(return_type, field_nodes, info, path, value)
                    )
                else:
                    completed = self.complete_value(return_type, field_nodes, info, path, result)
            finally:
                if token is not None:
                    code_path.reset(token)
            if isinstance(completed, SyncFuture):
                return completed.then(None, on_error)
            return completed
        except Exception as raw_error:
            return on_error(raw_error)

    def complete_value(self, return_type, field_nodes, info, path, result):
        if isinstance(result, SyncFuture):  # e.g. a list item that is itself a loader future
            return result.then(lambda value: self.complete_value(return_type, field_nodes, info, path, value))
        if is_non_null_type(return_type):
            completed = self.complete_value(
                return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type,
                field_nodes,
                info,
                path,
                result,
            )

            def ensure_not_null(value: Any) -> Any:
                if value is None:
                    raise TypeError(
                        f"Cannot return null for non-nullable field {info.parent_type.name}.{info.field_name}."
                    )
                return value

            if isinstance(completed, SyncFuture):
                return completed.then(ensure_not_null)
            return ensure_not_null(completed)
        return super().complete_value(return_type, field_nodes, info, path, result)

    def complete_list_value(self, return_type, field_nodes, info, path, result):
        if not is_iterable(result):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{info.parent_type.name}.{info.field_name}'."
            )
        item_type = return_type.of_type
        completed_items: list[Any] = []
        pending = False
        for index, item in enumerate(result):
            item_path = path.add_key(index, None)
            try:
                completed = self.complete_value(item_type, field_nodes, info, item_path, item)
                if isinstance(completed, SyncFuture):
                    pending = True
                    completed = completed.then(None, self._item_error_handler(field_nodes, item_path, item_type))
            except Exception as raw_error:
                completed = self._item_error_handler(field_nodes, item_path, item_type)(raw_error)
            completed_items.append(completed)
        if not pending:
            return completed_items
        return SyncFuture.gather(completed_items)

    def _item_error_handler(self, field_nodes, item_path, item_type):
        def on_error(raw_error: BaseException) -> None:
            error = located_error(raw_error, field_nodes, item_path.as_list())
            self.handle_field_error(error, item_type)
            return None

        return on_error
