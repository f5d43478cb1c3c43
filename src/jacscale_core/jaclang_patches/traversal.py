"""Patch: a faster `[-->]` for requests served from our RequestMemory (same results as jaclang's).

jaclang 0.16.7's `edges_to_nodes` resolves every edge stub, its source and its
target through `resolve_ref` -> `populate` -> `Jac.get_context()` -> `mem.get`,
and checks read access through three hook calls per node; listing 100 children
spent most of its time in that machinery, not in the graph. This version is the
same loop over the same data: the stubs are populated the same way (from this
request's anchors, loading misses in two batches first), the filters run in the
same order, and every case jaclang treats specially — a stub that does not
resolve, a dangling endpoint, a node the caller may not obviously read — is
handed to jaclang's own `resolve_ref` / `check_read_access`. It only runs while
the current context's memory is a `RequestMemory` and the access hooks have only
jaclang's implementations; otherwise jaclang's hook runs unchanged.

`refs` first asks jaclang's query planner, which can only answer from a topology
index jacscale keeps off; `execute_path` skips that analysis over a RequestMemory.

`install()` keeps jaclang's own functions on the replacements (`jaclang_original`).
`tests/test_jac_traversal.py` compares the two on graphs with every direction,
filters, undirected edges, foreign nodes and dangling edges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import Anchor, NodeAnchor
from jaclang.jac0core.constant import EdgeDir
from jaclang.jac0core.runtime import JacRuntimeInterface, plugin_manager, resolve_ref
from jaclang.runtimelib import planner  # type: ignore[attr-defined]

from jacscale_core.memory import RequestMemory
from jacscale_core.schema import PLACEHOLDER_TYPES

_OUT_OR_ANY = (EdgeDir.OUT, EdgeDir.ANY)
_IN_OR_ANY = (EdgeDir.IN, EdgeDir.ANY)
# Hooks whose default behaviour the fast path reproduces; another plugin
# implementing any of them turns the fast path off.
_REPLACED_HOOKS = ("edges_to_nodes", "check_read_access", "check_access_level", "get_context")


def _only_default_impls() -> bool:
    relay = plugin_manager.hook
    return all(len(getattr(relay, name).get_hookimpls()) == 1 for name in _REPLACED_HOOKS)


def _populated(anchor: Anchor) -> bool:
    d = anchor.__dict__
    return "archetype" in d and (not isinstance(anchor, NodeAnchor) or "edges" in d)


def _resolve(stub: Anchor, referrer: Anchor, mem: RequestMemory) -> Anchor | None:
    """`resolve_ref(stub, referrer)`: populate the stub from this request's anchor."""
    if _populated(stub):
        return stub
    loaded = mem.get(stub.id)
    if loaded is not None:
        stub.__dict__.update(loaded.__dict__)
        if _populated(stub):
            return stub
    return resolve_ref(stub, referrer)  # not loadable: jaclang logs and heals it


def _prefetch(origin: list[Anchor], mem: RequestMemory) -> None:
    """Load the origins' edges, then those edges' endpoints, one batch each."""
    mem.prefetch([stub.id for nanch in origin for stub in nanch.edges if not _populated(stub)])
    loaded = mem.__mem__
    ends = []
    for nanch in origin:
        for stub in nanch.edges:
            edge = loaded.get(stub.id)
            if edge is not None:
                d = edge.__dict__
                source, target = d.get("source"), d.get("target")
                if source is not None and not _populated(source):
                    ends.append(source.id)
                if target is not None and not _populated(target):
                    ends.append(target.id)
    mem.prefetch(ends)


def _reader(ctx: Any) -> Callable[[Anchor], bool]:
    """`Jac.check_read_access` with the caller-owns-it answer computed inline."""
    user_root = ctx.user_root
    if user_root is None:
        return Jac.check_read_access  # type: ignore[no-any-return]
    system_root = ctx.system_root
    root_id = user_root.id
    is_superuser = user_root == system_root

    def can_read(to: Anchor) -> bool:
        d = to.__dict__
        persistent = d.get("persistent")
        if persistent is None:  # not a populated anchor: let jaclang decide
            return Jac.check_read_access(to)  # type: ignore[no-any-return]
        # check_access_level's first answers: not persisted, or ours -> WRITE.
        if not persistent or d.get("hash") == 0:
            return True
        if is_superuser or d.get("root") == root_id or user_root == to:
            return True
        return Jac.check_read_access(to)  # type: ignore[no-any-return]

    return can_read


def fast_edges_to_nodes(
    origin: list[Any], destination: Any, ctx: Any, mem: RequestMemory
) -> list[Any]:
    """jaclang's JacNode.edges_to_nodes over a RequestMemory, without per-stub hook calls."""
    anchors = [nd.__jac__ for nd in origin]
    _prefetch(anchors, mem)
    ctx.note_traversal_reads(anchors)
    can_read = _reader(ctx)
    direction = destination.direction
    edge_filter = destination.edge_filter
    node_filter = destination.node_filter
    nodes: dict[Anchor, Any] = {}
    for nanch in anchors:
        for stub in list(nanch.edges):
            edge = _resolve(stub, nanch, mem)
            if edge is None:
                continue
            source = _resolve(edge.source, edge, mem)
            target = _resolve(edge.target, edge, mem)
            if source is None or target is None:
                _drop_dead_edge(mem, nanch, edge, source, target)
                continue
            effective = EdgeDir.ANY if edge.is_undirected else direction
            if type(edge.archetype) in PLACEHOLDER_TYPES:
                continue  # a quarantined record: skipped by every traversal
            if edge_filter(edge.archetype) and source.archetype and target.archetype:
                if (
                    effective in _OUT_OR_ANY
                    and nanch == source
                    and node_filter(target.archetype)
                    and type(target.archetype) not in PLACEHOLDER_TYPES
                    and can_read(target)
                ):
                    nodes[target] = target.archetype
                if (
                    effective in _IN_OR_ANY
                    and nanch == target
                    and node_filter(source.archetype)
                    and type(source.archetype) not in PLACEHOLDER_TYPES
                    and can_read(source)
                ):
                    nodes[source] = source.archetype
    return list(nodes.values())


def _drop_dead_edge(
    mem: RequestMemory, nanch: Anchor, edge: Anchor, source: Anchor | None, target: Anchor | None
) -> None:
    """jaclang's rule for an edge whose endpoint is gone: prune it unless recoverable."""
    dead = (source is None and not mem.is_recoverable_quarantine(edge.source.id)) or (
        target is None and not mem.is_recoverable_quarantine(edge.target.id)
    )
    if dead:
        mem.quarantine_ref(nanch, edge)


def _edges_to_nodes_over(
    jaclang_edges_to_nodes: Callable[..., list[Any]],
) -> Callable[..., list[Any]]:
    def edges_to_nodes(origin: list[Any], destination: Any) -> list[Any]:
        """jaclang's JacNode.edges_to_nodes, faster over a RequestMemory."""
        ctx = Jac.get_context()
        mem = ctx.mem
        if type(mem) is not RequestMemory or not _only_default_impls():
            return jaclang_edges_to_nodes(origin=origin, destination=destination)
        return fast_edges_to_nodes(origin, destination, ctx, mem)

    edges_to_nodes.jaclang_original = jaclang_edges_to_nodes  # type: ignore[attr-defined]
    return edges_to_nodes


def _execute_path_over(
    jaclang_execute_path: Callable[..., list[Any] | None],
) -> Callable[..., list[Any] | None]:
    def execute_path(mem: Any, path: Any, slc: slice | None = None) -> list[Any] | None:
        """jaclang's query planner, skipped over a RequestMemory.

        The planner only answers from jaclang's topology index, which jacscale keeps
        off (jacscale_core.app); before saying so it analyses the filter lambdas'
        bytecode on every `[-->(?:T)]`. None sends `refs` to the edge walk, as the
        planner itself would.
        """
        if type(mem) is RequestMemory:
            return None
        return jaclang_execute_path(mem, path, slc)

    execute_path.jaclang_original = jaclang_execute_path  # type: ignore[attr-defined]
    return execute_path


def installed() -> bool:
    """True when `[-->]` goes through this module's versions."""
    return hasattr(JacRuntimeInterface.edges_to_nodes, "jaclang_original") and hasattr(
        planner.execute_path, "jaclang_original"
    )


def install() -> bool:
    """Route `[-->]` through the fast versions (idempotent); False if already installed."""
    if installed():
        return False
    fast = _edges_to_nodes_over(JacRuntimeInterface.edges_to_nodes)
    JacRuntimeInterface.edges_to_nodes = staticmethod(fast)  # type: ignore[assignment]
    # `refs` imports execute_path from the module on every call.
    planner.execute_path = _execute_path_over(planner.execute_path)
    return True
