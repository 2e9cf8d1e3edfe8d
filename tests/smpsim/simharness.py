# SPDX-License-Identifier: LGPL-2.1-or-later
"""The old name of tests/lib/harness.py, kept for tools/bench/upload and
tools/bench/daemon-push: `import simharness` gives that very module (so
setting simharness.SMPSIM sets the harness's).  Tests import harness."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

sys.modules[__name__] = harness
