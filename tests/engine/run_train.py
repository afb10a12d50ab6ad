"""``padm train`` in a subprocess, optionally on the stand-in network (``PADM_TEST_STANDIN=1``).

Used by the SIGKILL-resume, SIGINT/SIGTERM, run-folder lock and torchrun tests, which need real
processes: a monkeypatch does not cross a process boundary, so this runner applies it before handing
over to the click command.  ``PADM_TEST_STEP_DELAY=SECONDS`` slows every step down (the losses stay
the same), so a test can signal the run, or start a second one, while it trains.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("PADM_TEST_STANDIN") == "1":
    import padm.engine.checkpoint as ck
    from engine_helpers import StandIn

    ck.create_model = lambda config: StandIn(config)

if os.environ.get("PADM_TEST_STEP_DELAY"):  # slow each step down, so a test can act while the run is at it
    import time

    import padm.engine.train as tr

    _loss, _delay = tr.unfolding_loss, float(os.environ["PADM_TEST_STEP_DELAY"])

    def _slow_loss(*args, **kwargs):
        time.sleep(_delay)
        return _loss(*args, **kwargs)

    tr.unfolding_loss = _slow_loss

import padm.engine.launch as _launch  # noqa: E402

_launch.cpu_cores = lambda: 1  # one process, as in the in-process tests (tests/conftest.py)

from padm.engine.cli import train  # noqa: E402

if __name__ == "__main__":
    train(prog_name="run_train.py")
