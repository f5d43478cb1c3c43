"""jacscale core: the microkernel.

`from jacscale_core import create_app; app = create_app("app.jac")` gives a Starlette app.
"""

from jacscale_core.app import create_app

__all__ = ["create_app"]
