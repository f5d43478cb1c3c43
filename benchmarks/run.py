"""`make bench` / `make bench-quick`: jacscale and jac-scale 0.2.31 side by side.

Run with the project's venv: ``.venv/bin/python benchmarks/run.py [--quick]``;
``--help`` lists the options. See benchmarks/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
