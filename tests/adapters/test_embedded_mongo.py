"""The embedded server's own process keeps its garbage collections short."""

import gc
import time

from order_generation.adapters.embedded_mongo import EmbeddedMongo


def test_freezing_survivors_leaves_collections_only_the_new_objects():
    mongo = EmbeddedMongo(None)
    mongo.start()
    try:
        gc.unfreeze()
        survivors = [[i] for i in range(10_000)]  # tracked, alive: frozen on the next tick
        mongo.freeze_survivors(every=0.05)
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() < len(survivors) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_freeze_count() >= len(survivors)
        assert gc.get_count()[0] < len(survivors)
    finally:
        mongo.stop()
        gc.unfreeze()
