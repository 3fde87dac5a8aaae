"""Plugin lookup: solvers, mappings and accelerations by name.

Names come from entry points (groups ``msorch.solvers``, ``msorch.mappings``,
``msorch.accelerations``; the built-ins are declared in ``setup.cfg``) or are
spelled ``package.module:Attribute``.  The runtime imports no physics: it only
ever reaches plugins through here.
"""
from __future__ import annotations

import importlib
import sys
from functools import cache
from importlib.metadata import entry_points

OWN_PACKAGES = ("msorch", "solvers", "couplings")   # this distribution's top-level packages
GROUPS = {"solver": "msorch.solvers", "mapping": "msorch.mappings",
          "acceleration": "msorch.accelerations"}


class PluginError(LookupError):
    """A plugin name that does not resolve; ``str()`` says why."""


@cache
def _entry_points(kind: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUPS[kind])}


def add_search_path(*directories) -> None:
    """Let ``module:Class`` names resolve to modules in ``directories`` (on every rank).

    They go *after* the installed packages on ``sys.path``, and msorch's own
    top-level packages are imported first: an editable install finds them only
    after every ``sys.path`` entry, so a user's folder that happens to be called
    ``solvers`` or ``couplings`` would otherwise shadow them.
    """
    for package in OWN_PACKAGES:
        importlib.import_module(package)
    for directory in map(str, directories):
        if directory not in sys.path:
            sys.path.append(directory)
    importlib.invalidate_caches()


def names(kind: str) -> list[str]:
    """Registered names of one plugin kind ('solver', 'mapping', 'acceleration')."""
    return sorted(_entry_points(kind))


def load(kind: str, name: str):
    """The object named ``name`` (a registered name or ``module:Attribute``)."""
    target = _entry_points(kind).get(name, name)
    if ":" not in target:
        raise PluginError(f"no {kind} named {name!r}; registered: {', '.join(names(kind)) or 'none'}"
                          " (or write 'package.module:Class')")
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise PluginError(f"{kind} {name!r}: cannot import module {module!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{kind} {name!r}: module {module!r} has no attribute {attr!r}") from None
    return obj
