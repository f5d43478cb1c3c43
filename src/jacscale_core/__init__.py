"""jacscale core: the microkernel.

`from jacscale_core import create_app; app = create_app("app.jac")` gives a Starlette app.
A plugin author needs only the names exported here (see docs/plugins.md).
"""

from jacscale_core.app import create_app
from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_core.http_endpoints import authenticate, json_response
from jacscale_core.plugins import PluginError, hookimpl, hookspec
from jacscale_core.principal import Principal

__all__ = [
    "ApiError",
    "AppContext",
    "PluginError",
    "Principal",
    "authenticate",
    "create_app",
    "hookimpl",
    "hookspec",
    "json_response",
]
