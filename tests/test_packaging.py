"""A wheel install works as well as an editable one: the XSDs and migrations ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from datetime import date
from pathlib import Path

from lxml import etree

from tests import builders as b

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_installed_outside_the_checkout_processes_a_sample(tmp_path: Path) -> None:
    """Build the wheel, install it into a fresh venv outside the checkout, and process a file
    there: every XSD and migration is in the wheel, and the code runs from the venv."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(wheels.glob("dit_gateway-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for xsd in (REPO / "xsd").glob("*.xsd"):
        assert f"gateway/xsd/{xsd.name}" in names
    for sql in (REPO / "gateway" / "store" / "migrations").glob("*.sql"):
        assert f"gateway/store/migrations/{sql.name}" in names

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # The wheel's dependencies come from the running environment (no network in a test); the
    # wheel itself is installed by pip into the venv's own site-packages, which comes first.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=300, env=env, cwd=tmp_path,
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_deps.pth").write_text("\n".join(sorted(deps)) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    sample = work / "pos.xml"
    sample.write_text(b.positions("RGT", [b.position(1)]))
    where = subprocess.run(
        [str(python), "-c", "import gateway; print(gateway.__file__)"],
        check=True, capture_output=True, text=True, cwd=work, env=env,
    ).stdout.strip()
    assert where.startswith(site), where
    result = subprocess.run(
        [str(venv / "bin" / "dit-gateway"), "process", "--as-of", "2026-11-02", str(sample)],
        capture_output=True, text=True, cwd=work, env=env, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ack = etree.parse(str(work / "outbox" / "reports" / "acks" / "pos.ack.xml")).getroot()
    assert ack.get("status") == "processed"
    assert (work / "outbox" / "tis" / "EOE" / "positions-RGT-2026-11-02.xml").is_file()
    # A placement file takes the streamed path (decided as it is read, the ack's outcomes
    # spooled in var/): the placements schema and the store's migrations ship in the wheel too.
    rotation = work / "rotation.xml"
    rotation.write_text(b.rotation(3, date(2026, 12, 1)))
    (work / "post.xml").write_text(b.rotation_post())
    result = subprocess.run(
        [str(venv / "bin" / "dit-gateway"), "process", "--as-of", "2026-11-02",
         str(work / "post.xml"), str(rotation)],
        capture_output=True, text=True, cwd=work, env=env, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ack = etree.parse(str(work / "outbox" / "reports" / "acks" / "rotation.ack.xml")).getroot()
    totals = ack.find("{urn:dit-gateway:ack:1}Totals")
    assert totals is not None
    assert totals.get("loaded") == "3"
    assert len(list((work / "outbox" / "esr" / "RGT").glob("applicants-rotation-*.xml"))) == 1
