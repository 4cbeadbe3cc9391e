"""The epoch loop's device prefetch: every batch once, in order, already split over `data`."""

import numpy as np

from jaxdl.training import loop
from jaxdl.utils import distributed


def test_device_batches_are_the_host_batches_in_order_and_run_ahead():
    mesh = distributed.make_mesh()  # the 4 simulated CPU devices
    pulled = []

    def host_batches():
        for i in range(5):
            pulled.append(i)
            yield {
                "x": np.full((4, 3), i, np.float32),
                "y": np.arange(4, dtype=np.int32) + i,
                "mask": np.ones(4, np.float32),
                "path": [f"clip{i}.wav"] * 4,
            }

    seen = []
    for i, batch in enumerate(loop.device_batches(host_batches(), mesh, ahead=2)):
        # When batch i is handed out, the copies of up to two later batches are already issued.
        assert len(pulled) == min(i + 3, 5)
        assert set(batch) == set(loop.MODEL_KEYS)  # strings stay on the host
        assert batch["x"].sharding == distributed.data_sharded(mesh)
        seen.append((float(batch["x"][0, 0]), np.asarray(batch["y"]).tolist()))
    assert seen == [(float(i), [i, i + 1, i + 2, i + 3]) for i in range(5)]
