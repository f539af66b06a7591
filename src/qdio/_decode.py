"""numba kernels that turn 32-bit TTTR records into photons and markers.

One classifier per record layout (bit fields of ../shared/ptu_format.md
section 4); one driver that walks a block of records in a single pass,
writes photons and markers, and keeps the overflow state (and a check of time
order) across blocks.  PTU, the legacy fixed-header formats and Becker &
Hickl SPC all end up here.  The driver is compiled once and cached on disk.

Every classifier returns ``(kind, channel, time, dtime, overflow_add)``:
kind 0 photon, 1 overflow, 2 marker (``channel`` holds the marker bits; 0 for
a T2 sync event), 3 invalid record (skipped and counted).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["LAYOUTS", "Layout", "decode_block", "new_state"]

PHOTON, OVERFLOW, MARKER, INVALID = 0, 1, 2, 3

# state vector carried across blocks (_N_UNORDERED: blocks with photons out of order)
_OVF, _N_OVF, _N_INVALID, _LAST, _N_UNORDERED = 0, 1, 2, 3, 4


def new_state() -> np.ndarray:
    """Fresh decoder state: overflow offset, counts of overflow and invalid records,
    last photon macrotime, number of blocks with photons earlier than their predecessor."""
    state = np.zeros(5, np.int64)
    state[_LAST] = np.iinfo(np.int64).min
    return state


@numba.njit(inline="always")
def _picoharp_t3(rec, version):
    chan = rec >> 28
    dtime = (rec >> 16) & 0xFFF
    nsync = rec & 0xFFFF
    if chan == 15:
        if dtime == 0:
            return OVERFLOW, 0, 0, 0, 65536
        return MARKER, dtime & 0xF, nsync, 0, 0
    if chan == 0:
        return INVALID, 0, 0, 0, 0
    return PHOTON, chan - 1, nsync, dtime, 0


@numba.njit(inline="always")
def _picoharp_t2(rec, version):
    chan = rec >> 28
    tag = rec & 0x0FFFFFFF
    if chan == 15:
        bits = rec & 0xF
        if bits == 0:
            return OVERFLOW, 0, 0, 0, 210698240
        return MARKER, bits, tag & 0x0FFFFFF0, 0, 0
    return PHOTON, chan, tag, 0, 0


@numba.njit(inline="always")
def _hydraharp_t3(rec, version):
    chan = (rec >> 25) & 0x3F
    dtime = (rec >> 10) & 0x7FFF
    nsync = rec & 0x3FF
    if rec >> 31:
        if chan == 63:
            if version == 1 or nsync == 0:
                return OVERFLOW, 0, 0, 0, 1024
            return OVERFLOW, 0, 0, 0, 1024 * nsync
        if chan >= 1 and chan <= 15:
            return MARKER, chan, nsync, 0, 0
        return INVALID, 0, 0, 0, 0
    return PHOTON, chan, nsync, dtime, 0


@numba.njit(inline="always")
def _hydraharp_t2(rec, version):
    chan = (rec >> 25) & 0x3F
    tag = rec & 0x1FFFFFF
    if rec >> 31:
        if chan == 63:
            if version == 1:
                return OVERFLOW, 0, 0, 0, 33552000
            if tag == 0:
                return OVERFLOW, 0, 0, 0, 33554432
            return OVERFLOW, 0, 0, 0, 33554432 * tag
        if chan <= 15:  # 0 is a sync event, 1..15 markers
            return MARKER, chan, tag, 0, 0
        return INVALID, 0, 0, 0, 0
    return PHOTON, chan, tag, 0, 0


@numba.njit(inline="always")
def _timeharp_t3r(rec, version):
    # TimeHarp 200 T3R: valid:1 route:2 data:12 timetag:16 (bit 31 reserved)
    nsync = rec & 0xFFFF
    data = (rec >> 16) & 0xFFF
    route = (rec >> 28) & 0x3
    if (rec >> 30) & 1:
        return PHOTON, route, nsync, data, 0
    if data & 0x800:
        return OVERFLOW, 0, 0, 0, 65536
    if data & 0x7:
        return MARKER, data & 0x7, nsync, 0, 0
    return INVALID, 0, 0, 0, 0


@numba.njit(inline="always")
def _bh_spc(rec, version):
    # Becker & Hickl SPC-130/134/140/150/160/830 FIFO: bit 31 INVALID, 30 MTOV, 29 GAP,
    # 28 MARK, 27..16 ADC (inverted: microtime = 4095 - ADC), 15..12 ROUT, 11..0 MT
    # (SPC_data_file_structure.h; libtcspc bh_spc.hpp).
    # MTOV on a photon or marker adds one 4096 wrap before its own time; an
    # INVALID record with MTOV and no MARK holds the number of wraps in bits 0..27.
    # Markers have MARK and INVALID set, ROUT = marker bit mask.  MARK without
    # INVALID is undocumented (libtcspc warns on it): skipped as invalid, but its
    # MTOV still counts.  INVALID alone is an invalid photon (skipped).
    mtov = (rec >> 30) & 1
    invalid = rec >> 31
    macro = rec & 0xFFF
    rout = (rec >> 12) & 0xF
    if (rec >> 28) & 1:
        if invalid:
            return MARKER, rout, macro, 0, 4096 * mtov
        return INVALID, 0, 0, 0, 4096 * mtov
    if invalid:
        if mtov:
            return OVERFLOW, 0, 0, 0, 4096 * (rec & 0x0FFFFFFF)
        return INVALID, 0, 0, 0, 0
    return PHOTON, rout, macro, 4095 - ((rec >> 16) & 0xFFF), 4096 * mtov


@numba.njit(inline="always")
def _loop(classify, records, version, state, ch, mac, mic, mk_time, mk_bits):
    """Decode one block with ``classify`` inlined (outputs hold ``records.size`` rows;
    ``mic`` has 0 rows for T2).  Unsigned output indices and a branch-free
    time-order flag keep the loop tight (about 1e9 records/s here)."""
    n_photon = np.uint64(0)
    n_marker = np.uint64(0)
    ovf = state[_OVF]
    n_ovf = state[_N_OVF]
    n_invalid = state[_N_INVALID]
    last = state[_LAST]
    unordered = False
    write_mic = mic.shape[0] != 0
    for i in range(records.shape[0]):
        kind, chan, t, dtime, add = classify(np.int64(records[i]), version)
        ovf += add
        if kind == PHOTON:
            when = ovf + t
            unordered |= when < last
            last = when
            ch[n_photon] = chan
            mac[n_photon] = when
            if write_mic:
                mic[n_photon] = dtime
            n_photon += np.uint64(1)
        elif kind == MARKER:
            mk_time[n_marker] = ovf + t
            mk_bits[n_marker] = chan
            n_marker += np.uint64(1)
        elif kind == OVERFLOW:
            n_ovf += 1
        else:
            n_invalid += 1
    state[_OVF] = ovf
    state[_N_OVF] = n_ovf
    state[_N_INVALID] = n_invalid
    state[_LAST] = last
    state[_N_UNORDERED] += unordered
    return np.int64(n_photon), np.int64(n_marker)


# One small cached driver per layout: the classifier is inlined into the loop
# (a layout switch inside the loop costs ~40 %), and each compiles once per
# machine, not once per process.
@numba.njit(cache=True, nogil=True)
def _drive_picoharp_t3(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_picoharp_t3, records, version, state, ch, mac, mic, mk_time, mk_bits)


@numba.njit(cache=True, nogil=True)
def _drive_picoharp_t2(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_picoharp_t2, records, version, state, ch, mac, mic, mk_time, mk_bits)


@numba.njit(cache=True, nogil=True)
def _drive_hydraharp_t3(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_hydraharp_t3, records, version, state, ch, mac, mic, mk_time, mk_bits)


@numba.njit(cache=True, nogil=True)
def _drive_hydraharp_t2(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_hydraharp_t2, records, version, state, ch, mac, mic, mk_time, mk_bits)


@numba.njit(cache=True, nogil=True)
def _drive_timeharp_t3r(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_timeharp_t3r, records, version, state, ch, mac, mic, mk_time, mk_bits)


@numba.njit(cache=True, nogil=True)
def _drive_bh_spc(records, version, state, ch, mac, mic, mk_time, mk_bits):
    return _loop(_bh_spc, records, version, state, ch, mac, mic, mk_time, mk_bits)


class Layout:
    """A record layout: its block decoder and what its fields mean."""

    def __init__(self, name: str, driver, *, t3: bool, microtime_bits: int = 0, warn_invalid=True):
        self.name = name
        self.t3 = t3
        self.microtime_bits = microtime_bits
        # B&H cards write invalid records routinely (no routing, ADC out of range):
        # they are counted in attrs but not worth a warning there
        self.warn_invalid = warn_invalid
        self.driver = driver

    def __repr__(self) -> str:
        return f"Layout({self.name!r})"


LAYOUTS: dict[str, Layout] = {
    "picoharp_t3": Layout("picoharp_t3", _drive_picoharp_t3, t3=True, microtime_bits=12),
    "picoharp_t2": Layout("picoharp_t2", _drive_picoharp_t2, t3=False),
    "hydraharp_t3": Layout("hydraharp_t3", _drive_hydraharp_t3, t3=True, microtime_bits=15),
    "hydraharp_t2": Layout("hydraharp_t2", _drive_hydraharp_t2, t3=False),
    "timeharp_t3r": Layout("timeharp_t3r", _drive_timeharp_t3r, t3=True, microtime_bits=12),
    "bh_spc": Layout("bh_spc", _drive_bh_spc, t3=True, microtime_bits=12, warn_invalid=False),
}


def decode_block(
    layout: Layout,
    records: np.ndarray,
    version: int,
    state: np.ndarray,
    ch: np.ndarray,
    mac: np.ndarray,
    mic: np.ndarray,
    mk_time: np.ndarray,
    mk_bits: np.ndarray,
) -> tuple[int, int]:
    """Decode ``records`` into the output arrays (each with room for every record).

    Returns the number of photons and markers written; ``state`` carries the
    overflow offset, counters and time-order check to the next block.
    """
    return layout.driver(records, version, state, ch, mac, mic, mk_time, mk_bits)
