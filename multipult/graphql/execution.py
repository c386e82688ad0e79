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
from typing import Any, ClassVar, NamedTuple

from django.conf import settings
from graphene.types.resolver import dict_or_attr_resolver
from graphene.validation import depth_limit_validator
from graphene_django import DjangoObjectType
from graphql import FieldNode, GraphQLError, ValidationRule, located_error, specified_rules
from graphql.execution import ExecutionContext
from graphql.execution.execute import get_argument_values, get_field_def
from graphql.pyutils import Path, Undefined, is_iterable
from graphql.type import (
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)

from dbops.instrumentation.profiling import code_path, current_profile
from multipult.graphql.access import Rule, Viewer, viewer_of
from multipult.graphql.futures import SyncFuture


class IntrospectionForStaffRule(ValidationRule):
    """Refuses __schema and __type (not __typename): introspection is for staff, or with DEBUG on."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in ("__schema", "__type"):
            self.report_error(
                GraphQLError(f"Introspection ({node.name.value}) is only for staff users, or with DEBUG on.", node)
            )


class LeafRead(NamedTuple):
    """How to read one plain scalar field: the attribute, its default, the scalar's serialize, whether
    null is an error, and the access rule to check first (None: public)."""

    attname: str
    default: Any
    serialize: Any
    non_null: bool
    rule: Rule | None


def plain_leaf(field_def: GraphQLField) -> LeafRead | None:
    """How to read a field that only reads an attribute into a scalar (behind an access rule or not), else None."""
    if field_def.args:
        return None
    non_null = is_non_null_type(field_def.type)
    named = field_def.type.of_type if non_null else field_def.type
    if not is_leaf_type(named):
        return None
    resolve = field_def.resolve
    rule = getattr(resolve, "access_rule", None)
    if rule is not None:
        resolve = resolve.unguarded
    if resolve is DjangoObjectType.resolve_id:
        return LeafRead("pk", None, named.serialize, non_null, rule)
    if isinstance(resolve, functools.partial) and resolve.func is dict_or_attr_resolver and not resolve.keywords:
        attname, default = resolve.args
        return LeafRead(attname, default, named.serialize, non_null, rule)
    return None


class ObjectPlan(NamedTuple):
    """The fields of one selection set on one object type, worked out once per execution.

    Each step is (response name, field nodes, LeafRead or None); __typename is a LeafRead whose
    serialize is None and whose attname is the type's name. `plain` when every step is a LeafRead:
    a list of such objects is completed in one loop (`_plain_object`)."""

    fields: dict
    steps: tuple
    plain: bool
    class_typed: bool  # is_type_of depends only on the object's class (DjangoObjectType's), so it is cached


def _class_typed(object_type: GraphQLObjectType) -> bool:
    is_type_of = getattr(object_type.is_type_of, "__func__", None)
    return is_type_of is DjangoObjectType.is_type_of.__func__ or getattr(is_type_of, "by_class", False)


def validation_stages(*, introspection: bool = True) -> tuple[tuple, ...]:
    """The validation rules in stages, each run only on a document the stage before accepted: graphql-core's
    standard rules (fragment cycles among them), then the depth limit and, unless `introspection`, its
    refusal; so a refused query gets one error, not one per rule it breaks."""
    limits = (depth_limit_validator(max_depth=settings.GRAPHQL_MAX_DEPTH),)
    return (tuple(specified_rules), limits if introspection else (*limits, IntrospectionForStaffRule))


class DeferredExecutionContext(ExecutionContext):
    """Executes synchronously; values may be `SyncFuture`s that the context's DataLoaders settle."""

    # Off: every field goes through graphql-core's resolve/complete path (the reference the tests compare with).
    fast_paths: ClassVar[bool] = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Under the query profiler, each resolver runs with its field path set, so N+1 warnings name it.
        self._track_paths = current_profile() is not None
        # Most fields read one attribute into a scalar: those skip resolve info, path and completion,
        # and a list of objects made only of such fields is completed in one loop.
        self._fast = self.fast_paths and not self._track_paths and self.middleware_manager is None
        self._object_plans: dict[int, ObjectPlan] = {}
        self._typed_classes: dict[tuple[str, type], bool] = {}
        self._argument_values: dict[tuple[int, int], dict[str, Any]] = {}
        self._viewer: Viewer | None = None

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

    # -- plans ----------------------------------------------------------------------------------------
    def _object_plan(self, parent_type: GraphQLObjectType, fields: dict) -> ObjectPlan:
        # Keyed by the collected fields' identity: graphql-core caches them per (type, field nodes).
        plan = self._object_plans.get(id(fields))
        if plan is not None and plan.fields is fields:
            return plan
        steps = []
        for response_name, field_nodes in fields.items():
            if field_nodes[0].name.value == "__typename":
                leaf = LeafRead(parent_type.name, None, None, True, None)
            else:
                field_def = get_field_def(self.schema, parent_type, field_nodes[0])
                leaf = plain_leaf(field_def) if field_def else None
            steps.append((response_name, field_nodes, leaf))
        plain = all(leaf is not None for _, _, leaf in steps)
        plan = ObjectPlan(fields, tuple(steps), plain, _class_typed(parent_type))
        self._object_plans[id(fields)] = plan
        return plan

    def _type_accepted(self, object_type: GraphQLObjectType, plan: ObjectPlan, source: Any, info) -> bool:
        """Whether `source` passes the type's is_type_of without calling it again for a class it accepted."""
        if object_type.is_type_of is None:
            return True
        if not plan.class_typed:
            return False  # left to graphql-core, which calls it
        key = (object_type.name, type(source))
        accepted = self._typed_classes.get(key)
        if accepted is None:
            try:
                accepted = object_type.is_type_of(source, info) is True
            except Exception:
                return False  # graphql-core raises it again, with its path
            self._typed_classes[key] = accepted
        return accepted

    def _read_leaf(self, leaf: LeafRead, source: Any) -> Any:
        """The serialized value of a plain scalar field, or Undefined to leave it (and any error) to execute_field."""
        attname, default, serialize, non_null, rule = leaf
        if serialize is None:
            return attname  # __typename
        if rule is not None and not rule.allows(self._viewer or self._viewer_of_context(), source):
            return Undefined
        try:
            value = source.get(attname, default) if isinstance(source, dict) else getattr(source, attname, default)
            serialized = None if value is None else serialize(value)
        except Exception:
            return Undefined
        if serialized is Undefined or (serialized is None and (non_null or value is not None)):
            return Undefined
        return serialized

    def _viewer_of_context(self) -> Viewer:
        self._viewer = viewer_of(self.context_value)
        return self._viewer

    def _plain_object(self, plan: ObjectPlan, source: Any) -> dict[str, Any] | None:
        """The completed object when every field reads plainly, else None (graphql-core's path then runs)."""
        read = self._read_leaf
        completed: dict[str, Any] = {}
        for response_name, _field_nodes, leaf in plan.steps:
            value = read(leaf, source)
            if value is Undefined:
                return None
            completed[response_name] = value
        return completed

    # -- execution ------------------------------------------------------------------------------------
    def execute_fields(self, parent_type, source_value, path, fields):
        results: dict[str, Any] = {}
        pending: list[str] = []
        if self._fast:
            steps = self._object_plan(parent_type, fields).steps
        else:
            steps = [(response_name, field_nodes, None) for response_name, field_nodes in fields.items()]
        for response_name, field_nodes, leaf in steps:
            if leaf is not None:
                value = self._read_leaf(leaf, source_value)
                if value is not Undefined:
                    results[response_name] = value
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

    def _arguments(self, field_def: GraphQLField, field_node: FieldNode) -> dict[str, Any]:
        # The same node and variables give the same arguments: coerced once per execution, not per object.
        key = (id(field_def), id(field_node))
        arguments = self._argument_values.get(key)
        if arguments is None:
            arguments = self._argument_values[key] = get_argument_values(field_def, field_node, self.variable_values)
        return arguments

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

        def complete(value: Any) -> Any:
            try:
                completed = self.complete_value(return_type, field_nodes, info, path, value)
            except Exception as raw_error:
                return on_error(raw_error)
            return completed.then(None, on_error) if isinstance(completed, SyncFuture) else completed

        try:
            args = (
                self._arguments(field_def, field_nodes[0])
                if self._fast
                else get_argument_values(field_def, field_nodes[0], self.variable_values)
            )
            # Under the profiler, the field path covers resolving and completing (a lazy queryset runs then).
            token = code_path.set(path) if self._track_paths else None
            try:
                result = resolve_fn(source, info, **args)
                if isinstance(result, SyncFuture):
                    return result.then(complete, on_error)
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
            item_type = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
            completed = self.complete_value(item_type, field_nodes, info, path, result)

            def ensure_not_null(value: Any) -> Any:
                if value is None:
                    raise TypeError(
                        f"Cannot return null for non-nullable field {info.parent_type.name}.{info.field_name}."
                    )
                return value

            if isinstance(completed, SyncFuture):
                # A deferred object or list completes to a dict or a list (or fails), never to None.
                return (
                    completed
                    if is_object_type(item_type) or is_list_type(item_type)
                    else completed.then(ensure_not_null)
                )
            return ensure_not_null(completed)
        return super().complete_value(return_type, field_nodes, info, path, result)

    def complete_object_value(self, return_type, field_nodes, info, path, result):
        if not self._fast:
            return super().complete_object_value(return_type, field_nodes, info, path, result)
        fields = self.collect_subfields(return_type, field_nodes)
        plan = self._object_plan(return_type, fields)
        if not self._type_accepted(return_type, plan, result, info):
            return super().complete_object_value(return_type, field_nodes, info, path, result)
        return self.execute_fields(return_type, result, path, fields)

    def complete_list_value(self, return_type, field_nodes, info, path, result):
        if not is_iterable(result):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{info.parent_type.name}.{info.field_name}'."
            )
        item_type = return_type.of_type
        plain_plan = self._plain_item_plan(item_type, field_nodes)
        object_type = get_nullable_type(item_type)
        completed_items: list[Any] = []
        pending = False
        for index, item in enumerate(result):
            if (
                plain_plan is not None
                and item is not None
                and not isinstance(item, (SyncFuture, Exception))
                and self._type_accepted(object_type, plain_plan, item, info)
            ):
                completed = self._plain_object(plain_plan, item)
                if completed is not None:
                    completed_items.append(completed)
                    continue
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

    def _plain_item_plan(self, item_type, field_nodes) -> ObjectPlan | None:
        """The plan of a list's items when they are objects of only plain fields (read in one loop), else None."""
        object_type = get_nullable_type(item_type)
        if not self._fast or not is_object_type(object_type):
            return None
        plan = self._object_plan(object_type, self.collect_subfields(object_type, field_nodes))
        return plan if plan.plain else None

    def _item_error_handler(self, field_nodes, item_path, item_type):
        def on_error(raw_error: BaseException) -> None:
            error = located_error(raw_error, field_nodes, item_path.as_list())
            self.handle_field_error(error, item_type)
            return None

        return on_error
