"""The qdlight command: info and convert, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import qdio
from qdlight.cli import main

from conftest import shared_file
from ptu_build import build_ptu, pt3


@pytest.fixture
def small_ptu(tmp_path):
    recs = [pt3(1, 10, 5), pt3(2, 20, 6), pt3(15, 0, 0), pt3(15, 1, 9), pt3(1, 30, 7)]
    return build_ptu(tmp_path / "small.ptu", recs)


def test_info_text(small_ptu, capsys):
    assert main(["info", str(small_ptu), "--tags"]) == 0
    out = capsys.readouterr().out
    assert "PicoHarp 300 T3" in out and "photons         3" in out
    assert "channel 0" in out and "channel 1" in out and "marker bit 0" in out
    assert "MeasDesc_Resolution" in out  # --tags lists the header


def test_info_json(small_ptu, capsys):
    assert main(["info", str(small_ptu), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "PTU" and info["measurement_mode"] == "T3"
    assert info["photons_per_channel"] == {"0": 2, "1": 1}
    assert info["n_markers"] == 1 and info["n_overflow_records"] == 1
    assert info["sync_rate_hz"] == pytest.approx(2.5e6)
    assert info["duration_s"] == pytest.approx((65536 + 7 - 5) * 400e-9)
    assert info["tags"]["TTResultFormat_TTTRRecType"] == 0x00010303


def test_info_matches_read_on_chunk_borders(small_ptu):
    from qdlight.info import describe

    whole = describe(small_ptu)
    chunked = describe(small_ptu, max_records=2)
    for key in ("n_photons", "photons_per_channel", "n_markers", "duration_s",
                "n_overflow_records"):  # fmt: skip
        assert whole[key] == chunked[key], key


def test_info_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.ptu")]) == 1
    err = capsys.readouterr().err
    assert "missing.ptu" in err and "Traceback" not in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a tttr file at all")
    assert main(["info", str(junk)]) == 1
    assert "unknown file format" in capsys.readouterr().err


def test_convert_ptu_round_trip(small_ptu, tmp_path, capsys):
    out = tmp_path / "out.ptu"
    assert main(["convert", str(small_ptu), str(out)]) == 0
    assert "picoharp_t3" in capsys.readouterr().out
    a = qdio.read(small_ptu, with_markers=True)
    b = qdio.read(out, with_markers=True)
    np.testing.assert_array_equal(a.stream.macrotime, b.stream.macrotime)
    np.testing.assert_array_equal(a.stream.microtime, b.stream.microtime)
    np.testing.assert_array_equal(a.markers.macrotime, b.markers.macrotime)
    # refuses to overwrite without --force, and never its own input
    assert main(["convert", str(small_ptu), str(out)]) == 2
    assert main(["convert", str(small_ptu), str(small_ptu), "--force"]) == 2
    assert main(["convert", str(small_ptu), str(tmp_path / "x.txt")]) == 2


def test_convert_hydraharp_keeps_channels(tmp_path):
    stream = qdio.PhotonStream(
        np.array([0, 5, 9], np.uint8), np.array([1, 2, 3]), np.array([0, 20000, 5]),
        1e-7, 25e-12, 32768,
    )  # fmt: skip
    src = qdio.write_ptu(tmp_path / "in.ptu", stream, record_type="hydraharp_v2_t3")
    out = tmp_path / "out.ptu"
    assert main(["convert", str(src), str(out), "--json"]) == 0
    back = qdio.read(out)
    assert back.channel.tolist() == [0, 5, 9] and back.microtime.tolist() == [0, 20000, 5]


def test_convert_real_pt3_to_photon_hdf5(tmp_path):
    src = shared_file("fcs_point_correlator/topfluorPE_2_1_1_1.pt3")
    out = tmp_path / "topfluor.h5"
    assert main(["convert", str(src), str(out)]) == 0
    a, b = qdio.read(src), qdio.read(out)
    np.testing.assert_array_equal(a.macrotime, b.macrotime)
    np.testing.assert_array_equal(a.microtime, b.microtime)
    assert b.macrotime_resolution_s == pytest.approx(a.macrotime_resolution_s)


def test_console_script_runs(small_ptu):
    done = subprocess.run(
        [sys.executable, "-m", "qdlight", "info", str(small_ptu), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_photons"] == 3


def test_simulate_writes_the_stream_qdsim_gives(tmp_path, capsys):
    import qdsim

    out, truth = tmp_path / "sim.ptu", tmp_path / "truth.npz"
    spectrum = tmp_path / "spectrum.csv"
    argv = ["simulate", "--preset", "paper_qd", "--power", "0.17uW", "--duration", "25s",
            "--seed", "3", "-o", str(out), "--truth", str(truth), "--spectrum", str(spectrum),
            "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = qdsim.simulate(
        qdsim.presets.paper_qd(), power_w=0.17e-6, duration_s=25.0, rng=3
    )  # 25 s is three 10 s chunks in the command: the same stream as one run
    back = qdio.read(out)
    np.testing.assert_array_equal(back.macrotime, expected.stream.macrotime)
    np.testing.assert_array_equal(back.microtime, expected.stream.microtime)
    np.testing.assert_array_equal(back.channel, expected.stream.channel)
    assert summary["photons"] == len(back)
    t = qdsim.Truth.load_npz(truth)
    np.testing.assert_array_equal(t.process, expected.truth.process)
    rows = np.loadtxt(spectrum, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, 1], expected.spectrum.counts)
    # an existing output is not overwritten without --force; bad units are one line
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["simulate", "--preset", "paper_qd", "--power=-1uW", "--duration", "1s",
                 "-o", str(tmp_path / "x.ptu")]) == 1  # fmt: skip
    assert "--power" in capsys.readouterr().err


def test_simulate_refuses_one_file_for_two_outputs(tmp_path, capsys):
    out = tmp_path / "q.ptu"
    argv = ["simulate", "--preset", "paper_qd", "--power", "0.1uW", "--duration", "1s",
            "-o", str(out), "--truth", str(out), "--force"]  # fmt: skip
    assert main(argv) == 1
    assert "must be different files" in capsys.readouterr().err
    assert not out.exists()
    assert main(["simulate", "--preset", "paper_qd", "--power", "nanuW", "--duration", "1s",
                 "-o", str(out)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "--power" in err and "--duration" not in err


def test_info_on_t3r_reports_the_stop_time():
    src = shared_file("libpicoquant/timeharp_v50.t3r")
    from qdlight.info import describe

    info = describe(src)
    assert info["acquisition_time_s"] < 10  # StopAfter (9.34 s), not the 60 s set time
