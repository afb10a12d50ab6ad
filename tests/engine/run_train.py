"""``padm train`` in a subprocess, optionally on the stand-in network (``PADM_TEST_STANDIN=1``).

Used by the SIGKILL-resume and torchrun tests, which need real processes: a monkeypatch does not
cross a process boundary, so this runner applies it before handing over to the click command.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("PADM_TEST_STANDIN") == "1":
    import padm.engine.checkpoint as ck
    from engine_helpers import StandIn

    ck.create_model = lambda config: StandIn(config)

from padm.engine.cli import train  # noqa: E402

if __name__ == "__main__":
    train(prog_name="run_train.py")
