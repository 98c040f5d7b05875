"""Pack/unpack: the compiled kernels against the PyTorch reference of the same layout."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.pack import pack_reference, unpack_reference, words_per_row

BITS = (1, 2, 4, 8)
SHAPES = [(1, 1), (3, 7), (17, 33), (5, 128), (64, 31), (0, 5), (4, 0)]


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_matches_reference(bits, shape, seeded):
    codes = torch.randint(0, 2**bits, shape, dtype=torch.uint8, generator=seeded)
    packed = kernels.pack(codes, bits)
    assert packed.dtype == torch.int32
    assert packed.shape == (shape[0], words_per_row(shape[1], bits))
    assert torch.equal(packed, pack_reference(codes, bits))
    assert torch.equal(kernels.unpack(packed, bits, shape[1]), codes)
    assert torch.equal(unpack_reference(packed, bits, shape[1]), codes)


def test_layout_is_lsb_first_within_words():
    codes = torch.tensor([[1, 2, 3, 0, 3]], dtype=torch.uint8)
    packed = kernels.pack(codes, 2)
    assert packed.tolist() == [[1 | (2 << 2) | (3 << 4) | (3 << 8)]]
    # The top code of a full word lands in the sign bit of int32 without changing the bits.
    full = torch.full((1, 16), 3, dtype=torch.uint8)
    assert kernels.pack(full, 2).tolist() == [[-1]]


def test_compiled_kernel_is_registered_for_cpu():
    assert kernels.extension_available(), "the C++ extension did not build; see README.md"
    assert torch._C._dispatch_has_kernel_for_dispatch_key("qgnn::pack", "CPU")


@pytest.mark.parametrize("bits", BITS)
def test_opcheck(bits, seeded):
    codes = torch.randint(0, 2**bits, (7, 45), dtype=torch.uint8, generator=seeded)
    torch.library.opcheck(torch.ops.qgnn.pack.default, (codes, bits))
    packed = kernels.pack(codes, bits)
    torch.library.opcheck(torch.ops.qgnn.unpack.default, (packed, bits, 45))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: kernels.pack(torch.zeros(2, 3, dtype=torch.uint8), 3), "unsupported bit width"),
        (lambda: kernels.pack(torch.zeros(2, 3, dtype=torch.int64), 2), "uint8"),
        (lambda: kernels.pack(torch.zeros(6, dtype=torch.uint8), 2), "2-D"),
        (lambda: kernels.pack(torch.full((2, 3), 4, dtype=torch.uint8), 2), "does not fit"),
        (lambda: kernels.unpack(torch.zeros(2, 3, dtype=torch.int32), 2, 100), "words"),
        (lambda: kernels.unpack(torch.zeros(2, 3, dtype=torch.float32), 2, 40), "int32"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
