"""Contract tests of the owned sync DataLoader + deferred ExecutionContext against the pinned graphql-core.

These use a small in-memory schema (pure logic, no database) so each contract is checked in isolation:
batches by depth not rows, errors stay on their field, `.then` chaining, list items as futures,
loader isolation between threads. The real-database behaviour is in test_schema.py.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import graphene
import graphql
import pytest
from graphql import execute, parse

from multipult.graphql.dataloaders import DataLoader, get_dataloaders
from multipult.graphql.execution import DeferredExecutionContext
from multipult.graphql.futures import SyncFuture


def test_graphql_core_is_the_pinned_version():
    # The execution context overrides graphql-core internals; a new version must re-run these tests.
    assert graphql.__version__ == "3.2.8"


class ChildrenLoader(DataLoader):
    """node id -> ids of its children (a complete binary-ish tree of `fanout` children per node)."""

    name = "children"
    fanout = 3
    calls: list[list[int]] = []

    def batch_load(self, keys):
        type(self).calls.append(list(keys))
        return [[key * 10 + index for index in range(1, self.fanout + 1)] for key in keys]


class BrokenLoader(DataLoader):
    name = "broken"

    def batch_load(self, keys):
        return [ValueError(f"no value for {key}") if key % 2 else key * 100 for key in keys]


class FailingBatchLoader(DataLoader):
    name = "failingBatch"

    def batch_load(self, keys):
        raise RuntimeError("backend down")


class Node(graphene.ObjectType):
    id = graphene.Int(required=True)
    children = graphene.List(graphene.NonNull(lambda: Node))
    label = graphene.String()
    maybe = graphene.Int()
    must = graphene.Int(required=True)
    batch_failure = graphene.Int()

    @staticmethod
    def resolve_children(node, info):
        ids = info.context.dataloaders[ChildrenLoader].load(node.id)
        return ids.then(lambda child_ids: [Node(id=child_id) for child_id in child_ids])

    @staticmethod
    def resolve_label(node, info):
        # .then chaining over two loader round trips: children, then the first child's children.
        loaders = info.context.dataloaders
        first_child = loaders[ChildrenLoader].load(node.id).then(lambda ids: ids[0])
        return first_child.then(lambda child: loaders[ChildrenLoader].load(child)).then(
            lambda grandchildren: f"{node.id}>{grandchildren[0]}"
        )

    @staticmethod
    def resolve_maybe(node, info):
        return info.context.dataloaders[BrokenLoader].load(node.id)

    @staticmethod
    def resolve_must(node, info):
        return info.context.dataloaders[BrokenLoader].load(node.id)

    @staticmethod
    def resolve_batch_failure(node, info):
        return info.context.dataloaders[FailingBatchLoader].load(node.id)


class Query(graphene.ObjectType):
    roots = graphene.List(Node, count=graphene.Int(required=True), start=graphene.Int(default_value=1))
    root_ids = graphene.List(graphene.Int, count=graphene.Int(required=True))

    @staticmethod
    def resolve_roots(root, info, count, start):
        return [Node(id=index) for index in range(start, start + count)]

    @staticmethod
    def resolve_root_ids(root, info, count):
        # list items that are themselves futures
        return [info.context.dataloaders[BrokenLoader].load(index * 2) for index in range(1, count + 1)]


tree_schema = graphene.Schema(query=Query)


def run(query: str, **variables):
    context = SimpleNamespace(dataloaders=get_dataloaders())
    result = execute(
        tree_schema.graphql_schema,
        parse(query),
        context_value=context,
        variable_values=variables,
        execution_context_class=DeferredExecutionContext,
    )
    return result, context.dataloaders


@pytest.fixture(autouse=True)
def _reset_calls():
    ChildrenLoader.calls = []


@pytest.mark.parametrize("roots", [2, 40])
def test_one_batch_per_level_whatever_the_number_of_rows(roots):
    # roots from 1000: no child id equals a root id, so no key is a cache hit
    query = "query($n: Int!) { roots(count: $n, start: 1000) { id children { id children { id } } } }"
    result, loaders = run(query, n=roots)

    assert result.errors is None
    assert len(result.data["roots"]) == roots
    assert len(ChildrenLoader.calls) == 2  # two nested `children` levels -> two batches
    assert len(ChildrenLoader.calls[0]) == roots
    assert len(ChildrenLoader.calls[1]) == roots * ChildrenLoader.fanout
    first = result.data["roots"][0]
    children = (10001, 10002, 10003)
    assert first == {
        "id": 1000,
        "children": [{"id": c, "children": [{"id": c * 10 + i} for i in (1, 2, 3)]} for c in children],
    }
    assert loaders.stats()["children"] == {"batches": 2, "keys": roots * 4, "cacheHits": 0}


def test_then_chaining_across_loader_round_trips():
    result, loaders = run("{ roots(count: 3) { label children { id } } }")

    assert result.errors is None
    assert [node["label"] for node in result.data["roots"]] == ["1>111", "2>211", "3>311"]
    # roots' children are shared by `label` and `children`: cached, not loaded twice
    assert ChildrenLoader.calls == [[1, 2, 3], [11, 21, 31]]
    assert loaders.stats()["children"]["cacheHits"] == 3


def test_an_error_stays_on_its_failing_field():
    result, _ = run("{ roots(count: 4) { id maybe } }")

    assert result.data["roots"] == [
        {"id": 1, "maybe": None},
        {"id": 2, "maybe": 200},
        {"id": 3, "maybe": None},
        {"id": 4, "maybe": 400},
    ]
    assert sorted(error.path for error in result.errors) == [["roots", 0, "maybe"], ["roots", 2, "maybe"]]
    assert result.errors[0].message == "no value for 1"


def test_a_non_null_error_nulls_only_the_nearest_nullable_parent():
    result, _ = run("{ roots(count: 2) { id must } }")

    assert result.data == {"roots": [None, {"id": 2, "must": 200}]}
    assert [error.path for error in result.errors] == [["roots", 0, "must"]]


def test_a_failed_batch_fails_its_fields_and_nothing_else():
    result, _ = run("{ roots(count: 2) { id batchFailure children { id } } }")

    assert [node["batchFailure"] for node in result.data["roots"]] == [None, None]
    assert [len(node["children"]) for node in result.data["roots"]] == [3, 3]
    assert {error.message for error in result.errors} == {"backend down"}
    assert len(result.errors) == 2


def test_list_items_may_be_futures():
    result, loaders = run("{ rootIds(count: 3) }")

    assert result.errors is None
    assert result.data == {"rootIds": [200, 400, 600]}
    assert loaders.stats()["broken"]["batches"] == 1


def test_a_future_nobody_settles_is_reported_not_hung():
    class Orphan(graphene.ObjectType):
        value = graphene.Int()

        @staticmethod
        def resolve_value(root, info):
            return SyncFuture()

    schema = graphene.Schema(query=Orphan)
    result = execute(
        schema.graphql_schema,
        parse("{ value }"),
        context_value=SimpleNamespace(dataloaders=get_dataloaders()),
        execution_context_class=DeferredExecutionContext,
    )
    assert result.data is None
    assert "no DataLoader" in result.errors[0].message


def test_loaders_are_per_request_and_refuse_another_thread():
    first, second = get_dataloaders(), get_dataloaders()
    assert first[ChildrenLoader] is first[ChildrenLoader]
    assert first[ChildrenLoader] is not second[ChildrenLoader]

    errors: list[BaseException] = []

    def use_from_other_thread():
        try:
            first[ChildrenLoader].load(1)
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=use_from_other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "another request's thread" in str(errors[0])


def test_concurrent_executions_in_threads_do_not_share_caches():
    barrier = threading.Barrier(4)
    results: dict[int, list] = {}

    def worker(count: int):
        barrier.wait()
        for _ in range(20):
            result, loaders = run("query($n: Int!) { roots(count: $n) { id children { id } } }", n=count)
            assert result.errors is None
            results.setdefault(count, []).append(
                (len(result.data["roots"]), loaders.stats()["children"]["keys"], loaders.stats()["children"]["batches"])
            )

    threads = [threading.Thread(target=worker, args=(count,)) for count in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each request saw only its own keys: n roots, n keys, one batch — never another request's cache
    assert {count: set(runs) for count, runs in results.items()} == {n: {(n, n, 1)} for n in (1, 2, 3, 4)}


def test_sync_future_basics():
    assert SyncFuture.resolved(2).then(lambda v: v + 1).result() == 3
    rejected = SyncFuture.rejected(KeyError("x")).then(lambda v: v, lambda error: f"handled {error}")
    assert rejected.result() == "handled 'x'"
    pending = SyncFuture()
    gathered = SyncFuture.gather([1, pending, SyncFuture.resolved(3)])
    assert not gathered.done()
    pending.set_result(SyncFuture.resolved(2))  # adopts a returned future
    assert gathered.result() == [1, 2, 3]
    # regression: a settled future before a pending one must not resolve the gather early
    later = SyncFuture()
    early = SyncFuture.gather([SyncFuture.resolved("a"), later])
    assert not early.done()
    later.set_result("b")
    assert early.result() == ["a", "b"]
    assert SyncFuture.gather([SyncFuture.resolved(1), 2]).result() == [1, 2]
    with pytest.raises(RuntimeError, match="pending"):
        SyncFuture().result()


class Thing(graphene.ObjectType):
    name = graphene.String(required=True)
    size = graphene.Int()
    label = graphene.String()

    def resolve_label(thing, info):
        return f"<{thing.name}>" if isinstance(thing, SimpleNamespace) else "dict"


class ThingQuery(graphene.ObjectType):
    things = graphene.List(Thing)

    def resolve_things(root, info):
        # a dict, a null in a non-null field, a value the scalar refuses, a missing attribute
        return [{"name": "a", "size": 1}, SimpleNamespace(name=None, size=2), SimpleNamespace(name="c", size="x"),
                SimpleNamespace(name="d")]  # fmt: skip


def test_plain_scalar_fields_read_directly_give_what_graphql_core_gives():
    # Attribute-reading scalar fields skip resolve info and completion: data and errors must not change.
    schema = graphene.Schema(query=ThingQuery).graphql_schema
    document = parse("{ things { name size label } }")
    fast = execute(schema, document, execution_context_class=DeferredExecutionContext)
    reference = execute(schema, document)
    assert (
        fast.data
        == reference.data
        == {
            "things": [
                {"name": "a", "size": 1, "label": "dict"},
                None,
                {"name": "c", "size": None, "label": "<c>"},
                {"name": "d", "size": None, "label": "<d>"},
            ]
        }
    )
    assert [(error.message, error.path) for error in fast.errors] == [
        (error.message, error.path) for error in reference.errors
    ]
    assert [error.path for error in fast.errors] == [["things", 1, "name"], ["things", 2, "size"]]
