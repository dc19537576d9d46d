"""callherald: the composition root and command-line interface."""

import os
from importlib.metadata import PackageNotFoundError, version

# The proxy runs small matrix products (DTMF screens, Goertzel banks) on its event loop. A pool of
# BLAS threads would only add wake-ups and spinning CPU to each, so one thread does them; this must
# be set before numpy is first imported, and an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

try:
    __version__ = version("callherald")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
