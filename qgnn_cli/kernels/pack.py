"""Packing b-bit codes into 32-bit words, and back.

The packed layout (the one place it is defined; every kernel reads it):

* Codes are unsigned integers in ``[0, 2**b)``, ``b`` in {1, 2, 4, 8}, given as a uint8 tensor of
  shape ``(rows, cols)``.
* Each row is packed independently into ``words_per_row(cols, b) = ceil(cols * b / 32)`` words,
  stored as an int32 tensor of shape ``(rows, words)`` (int32 only because torch lacks a full
  uint32; the bits are what matter).
* Code ``j`` of a row lives in word ``j // (32 // b)`` at bit offset ``(j % (32 // b)) * b``,
  least significant bits first. Unused high bits of a row's last word are zero.
* On a little-endian machine the same bytes read as uint8 put code ``j`` in byte ``j // (8 // b)``
  at bit offset ``(j % (8 // b)) * b``: kernels may walk a row word by word or byte by byte.
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.rounding import check_bits


def words_per_row(cols: int, bits: int) -> int:
    return (cols * check_bits(bits) + 31) // 32


def pack_reference(codes: torch.Tensor, bits: int) -> torch.Tensor:
    rows, cols = codes.shape
    per_word = 32 // bits
    words = words_per_row(cols, bits)
    padded = torch.zeros(rows, words * per_word, dtype=torch.int64, device=codes.device)
    padded[:, :cols] = codes.to(torch.int64)
    shifts = torch.arange(per_word, device=codes.device, dtype=torch.int64) * bits
    packed = (padded.view(rows, words, per_word) << shifts).sum(dim=2)
    # Fold the unsigned 32-bit value into int32's range without changing its bits.
    packed = torch.where(packed >= 2**31, packed - 2**32, packed)
    return packed.to(torch.int32)


def unpack_reference(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    rows, words = packed.shape
    per_word = 32 // bits
    shifts = torch.arange(per_word, device=packed.device, dtype=torch.int64) * bits
    unsigned = packed.to(torch.int64) & 0xFFFFFFFF
    codes = (unsigned.unsqueeze(2) >> shifts) & (2**bits - 1)
    return codes.reshape(rows, words * per_word)[:, :cols].to(torch.uint8)


def _pack_fake(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return codes.new_empty((codes.shape[0], words_per_row(codes.shape[1], bits)), dtype=torch.int32)


def _unpack_fake(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    return packed.new_empty((packed.shape[0], cols), dtype=torch.uint8)


define("pack(Tensor codes, int bits) -> Tensor", pack_reference, _pack_fake)
define("unpack(Tensor packed, int bits, int cols) -> Tensor", unpack_reference, _unpack_fake)


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack a (rows, cols) uint8 tensor of ``bits``-bit codes into (rows, words) int32 words."""
    check_bits(bits)
    if codes.dtype != torch.uint8 or codes.dim() != 2:
        raise ValueError(f"pack expects a 2-D uint8 tensor of codes, got {codes.dtype} {tuple(codes.shape)}")
    if codes.numel() and int(codes.max()) >= 2**bits:
        raise ValueError(f"code {int(codes.max())} does not fit in {bits} bits")
    return torch.ops.qgnn.pack(codes.contiguous(), bits)


def unpack(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack`: (rows, words) int32 -> (rows, cols) uint8."""
    check_bits(bits)
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise ValueError(f"unpack expects a 2-D int32 tensor, got {packed.dtype} {tuple(packed.shape)}")
    if cols < 0 or packed.shape[1] != words_per_row(cols, bits):
        raise ValueError(
            f"packed rows have {packed.shape[1]} words, but {cols} codes of {bits} bits need "
            f"{words_per_row(max(cols, 0), bits)}"
        )
    return torch.ops.qgnn.unpack(packed.contiguous(), bits, cols)
