"""The cocotb regression (`dcim regress`) on both simulators over a small config matrix.

Marker ``sim``: each case generates the Verilog, builds it for one simulator and runs every
cocotb test with one seed; the table must say pass and the scoreboard must have compared
results. Sizes are kept small so that the whole tier stays well inside CI's limit on 2 cores.
"""

import re

import pytest

from dcim.sim.cli import main

pytestmark = pytest.mark.sim

CONFIGS = {
    "tiny": ["--rows", "8", "--cols", "4"],
    "64x32": ["--rows", "64", "--cols", "32"],
    "npot": ["--rows", "20", "--cols", "12", "--w-stream-bits", "24", "--x-stream-bits", "40"],
    "serial4": ["--rows", "16", "--cols", "8", "--serial-bits", "4"],
    "unsigned": ["--rows", "16", "--cols", "8", "--act-signed", "false",
                 "--weight-signed", "false", "--serial-bits", "2", "--rounding", "rne"],
}


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_regress_passes(tmp_path, capsys, name, sim):
    code = main(["regress", *CONFIGS[name], "--sim", sim, "--seed", "1", "--out",
                 str(tmp_path), "--timeout", "1200"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    row = next(line for line in out.splitlines() if re.match(rf"dcim_core \S+\s+{sim}\s", line))
    cells = row.split()
    tests, transactions, macs = int(cells[3]), int(cells[4].replace(",", "")), \
        int(cells[5].replace(",", ""))
    assert tests >= 15 and transactions > 0 and macs > 0
    assert cells[-1] == "pass"
