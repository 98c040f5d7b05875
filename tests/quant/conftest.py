"""One intra-op thread for these tests: they use small tensors, where a second OpenMP thread only
adds synchronisation (and, on a shared machine, waits for a busy core). Restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
