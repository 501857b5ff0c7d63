"""Shared test configuration.

Hypothesis runs derandomized under CI so a red run is reproducible; deadlines are
off everywhere because this 2-core machine is shared and noisy (speed is measured
in ``bench/``, never asserted in tests).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
