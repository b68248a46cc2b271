"""``python -m sparsekd_ros.demo``: see sparsekd_ros.demo.runner."""
import sys

from sparsekd_ros.demo.runner import main

sys.exit(main())
