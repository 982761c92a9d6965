"""Bit packing of integer codes into bytes: ``ceil(n * bits / 8)`` bytes for n codes of 1-16 bits.

Layout (all functions): a little-endian bit stream. Code i occupies bits [i*bits, (i+1)*bits) of the
stream, least significant bit first; byte j holds stream bits [8j, 8j+8). So for 4-bit codes the
even element is the low nibble (``pack_4bit_u8``), for 16-bit codes the bytes are little-endian.
Signed codes are stored as two's complement ``bits``-bit fields and sign-extended on unpacking.
"""

from __future__ import annotations

import torch

_CHUNK = 1 << 20  # codes per chunk in the general path (a multiple of 8: chunks stay byte aligned)


def packed_nbytes(n: int, bits: int) -> int:
    """Bytes needed for ``n`` codes of ``bits`` bits."""
    return (n * bits + 7) // 8


def pack_4bit_u8(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte: element 2i in the low nibble, 2i+1 in the high nibble."""
    return pack_bits(codes, 4)


def unpack_4bit_u8(buf: torch.Tensor, n: int, signed: bool = False) -> torch.Tensor:
    return unpack_bits(buf, 4, n, signed)


def _pack_subbyte(u: torch.Tensor, bits: int) -> torch.Tensor:
    per = 8 // bits
    pad = (-u.numel()) % per
    if pad:
        u = torch.cat([u, u.new_zeros(pad)])
    u = u.reshape(-1, per)
    shifts = torch.arange(0, 8, bits, dtype=torch.int32)
    return (u.to(torch.int32) << shifts).sum(dim=1).to(torch.uint8)


def _unpack_subbyte(buf: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    shifts = torch.arange(0, 8, bits, dtype=torch.int32)
    u = (buf.to(torch.int32)[:, None] >> shifts) & ((1 << bits) - 1)
    return u.reshape(-1)[:n]


def _pack_general(u: torch.Tensor, bits: int) -> torch.Tensor:
    out = []
    weights = 1 << torch.arange(8, dtype=torch.int32)
    for start in range(0, u.numel(), _CHUNK):
        part = u[start:start + _CHUNK].to(torch.int32)
        stream = ((part[:, None] >> torch.arange(bits, dtype=torch.int32)) & 1).reshape(-1)
        pad = (-stream.numel()) % 8
        if pad:
            stream = torch.cat([stream, stream.new_zeros(pad)])
        out.append((stream.reshape(-1, 8) * weights).sum(dim=1).to(torch.uint8))
    return torch.cat(out)


def _unpack_general(buf: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    out = []
    bytes_per_chunk = _CHUNK * bits // 8
    weights = 1 << torch.arange(bits, dtype=torch.int32)
    for start in range(0, buf.numel(), bytes_per_chunk):
        part = buf[start:start + bytes_per_chunk].to(torch.int32)
        stream = ((part[:, None] >> torch.arange(8, dtype=torch.int32)) & 1).reshape(-1)
        usable = (stream.numel() // bits) * bits
        out.append((stream[:usable].reshape(-1, bits) * weights).sum(dim=1))
    return torch.cat(out)[:n]


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer ``codes`` (any integer dtype, any shape; flattened) into a uint8 tensor."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in [1, 16], got {bits}")
    if codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    flat = codes.reshape(-1).cpu()
    u = flat.to(torch.int32) & ((1 << bits) - 1)
    if bits == 8:
        return u.to(torch.uint8)
    if bits == 16:
        return u.to(torch.int32).to(torch.int16).view(torch.uint8) if u.numel() else u.to(torch.uint8)
    if 8 % bits == 0:
        return _pack_subbyte(u, bits)
    return _pack_general(u, bits)


def unpack_bits(buf: torch.Tensor, bits: int, n: int, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``n`` codes as int32 (sign-extended when ``signed``)."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in [1, 16], got {bits}")
    if buf.dtype != torch.uint8 or buf.dim() != 1:
        raise TypeError(f"packed codes must be a 1-d uint8 tensor, got {buf.dtype} with shape {tuple(buf.shape)}")
    if buf.numel() != packed_nbytes(n, bits):
        raise ValueError(f"{n} codes of {bits} bits need {packed_nbytes(n, bits)} bytes, got {buf.numel()}")
    if bits == 8:
        u = buf.to(torch.int32)
    elif bits == 16:
        u = buf.view(torch.int16).to(torch.int32) & 0xFFFF
    elif 8 % bits == 0:
        u = _unpack_subbyte(buf, bits, n)
    else:
        u = _unpack_general(buf, bits, n)
    if signed:
        u = torch.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return u
