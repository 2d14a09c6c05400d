"""Routing: send images a scan flagged to removal hooks (plugins or external commands), record the repairs.

    from ipad_qc.routing import route, load_policy

    summary = route("runs/today", load_policy("ipad-qc.toml"))   # what `ipad-qc route runs/today` does
"""

from ipad_qc.routing.api import Declined, RemovalHook, RepairRequest, confine_to_mask, from_float, to_float
from ipad_qc.routing.policy import HookSpec, PolicyError, RoutingPolicy, load_policy
from ipad_qc.routing.registry import available_hooks, create_hook, register_hook
from ipad_qc.routing.router import RouteError, RouteSummary, route

__all__ = [
    "Declined",
    "HookSpec",
    "PolicyError",
    "RemovalHook",
    "RepairRequest",
    "RouteError",
    "RouteSummary",
    "RoutingPolicy",
    "available_hooks",
    "confine_to_mask",
    "create_hook",
    "from_float",
    "load_policy",
    "register_hook",
    "route",
    "to_float",
]
