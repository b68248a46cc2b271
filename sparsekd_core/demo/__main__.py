"""``python -m sparsekd_core.demo``: see sparsekd_core.demo.runner."""
import sys

from sparsekd_core.demo.runner import main

sys.exit(main())
