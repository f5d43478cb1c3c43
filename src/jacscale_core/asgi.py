"""The ASGI app of a hypercorn worker process (built from JACSCALE_SERVE_SPEC).

Also usable directly: `JACSCALE_APP=app.jac hypercorn jacscale_core.asgi:app`.
"""

from __future__ import annotations

import json
import os

from jacscale_core.app import create_app
from jacscale_core.http_guards import refuse_h2c_upgrades
from jacscale_core.malloc_arenas import limit_malloc_arenas
from jacscale_core.server import SPEC_ENV, configure_logging

if SPEC_ENV in os.environ:
    _spec = json.loads(os.environ[SPEC_ENV])
else:
    _spec = {"app_path": os.environ.get("JACSCALE_APP", "app.jac"), "cli": {}}

limit_malloc_arenas()  # a worker process: before its threads start
configure_logging(_spec["cli"].get("log_format") or os.environ.get("JACSCALE_LOG_FORMAT", "human"))
refuse_h2c_upgrades()  # this worker process's hypercorn, too
app = create_app(_spec["app_path"], cli=_spec["cli"])
