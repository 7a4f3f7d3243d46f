"""``python -m st_contrast.cli ARGS``: the ``st-contrast`` command without the console script."""

from __future__ import annotations

import sys

from st_contrast.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
