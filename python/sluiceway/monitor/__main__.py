"""``python -m sluiceway.monitor FD``: the monitor process (started by ``MonitorProcess``)."""

import sys

from sluiceway.monitor.process import main

main(sys.argv[1:])
