"""The national benchmark's data and its run, at a tiny scale: the data is valid against the
XSDs, the same seed gives the same files, every flow goes through, and the last line has the
ratios (timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lxml import etree

from benchmarks.generate import Sizes, generate
from gateway.documents import BY_ROOT
from gateway.xml.schemas import schema
from tests.conftest import REPO


def test_generated_data_is_valid_and_reproducible(tmp_path: Path) -> None:
    """Every generated file is valid against its XSD; the same seed gives the same bytes."""
    sizes = Sizes.scaled(0.01)
    first = generate(tmp_path / "a", sizes, seed=7)
    second = generate(tmp_path / "b", sizes, seed=7)
    paths = [p for group in first.values() for p in group]
    assert len(paths) == 3 * sizes.vpds + 3
    for path in paths:
        tree = etree.parse(str(path))
        root = etree.QName(tree.getroot())
        kind = BY_ROOT[(root.namespace or "", root.localname)]
        xsd = schema(kind.xsd)
        assert xsd.validate(tree), (path.name, xsd.error_log)
    for flow, group in first.items():
        assert [p.read_bytes() for p in group] == [p.read_bytes() for p in second[flow]], flow


def test_each_vpds_posts_go_to_its_region_and_a_few_to_the_next(tmp_path: Path) -> None:
    """A trust sits in one region: its DPNs carry that region's code, and one post in 20 is
    managed by the next region's office (and a host post carries its lead's DPN, from the next
    VPD), so each position extract goes to two or three deaneries (P3), not to every one."""
    from gateway.rules.positions import deanery_of  # noqa: PLC0415
    from gateway.xml import readers  # noqa: PLC0415

    sizes = Sizes.scaled(0.05)
    paths = generate(tmp_path, sizes, seed=7)["positions"]
    for path in paths:
        root = etree.parse(str(path)).getroot()
        posts = [readers.position(e) for e in root if isinstance(e.tag, str)]
        by_deanery: dict[str, int] = {}
        for post in posts:
            by_deanery[deanery_of(post)] = by_deanery.get(deanery_of(post), 0) + 1
        assert 2 <= len(by_deanery) <= 3, (path.name, by_deanery)  # and a host post's lead's
        home = max(by_deanery.values())
        assert 0.02 < 1 - home / len(posts) < 0.1, (path.name, by_deanery)


def test_the_run_goes_through_every_flow_and_prints_the_ratios(tmp_path: Path) -> None:
    """``benchmarks/run.py --scale 0.01``: every acknowledgement is processed, the load files
    are confirmed, and the last line is the ratios."""
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--scale", "0.01", "--keep", str(tmp_path)],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"placements_ratio=[\d.]+ resend_ratio=[\d.]+ release_ratio=[\d.]+ "
                        r"persons_ratio=[\d.]+ peak_rss_mb=\d+", last), last
    acks = sorted((tmp_path / "gateway" / "outbox" / "reports" / "acks").glob("*.ack.xml"))
    statuses = {etree.parse(str(p)).getroot().get("status") for p in acks}
    assert statuses == {"processed"}
    assert any(p.name.startswith("confirmation-") for p in acks)
    assert len(acks) >= 3 * 3 + 3


def test_the_profile_summary_adds_samples_by_function(tmp_path: Path) -> None:
    """``benchmarks/profile.py`` sums py-spy's raw stacks: inclusive shares count a function
    once per stack (recursion too), self shares only the innermost frame."""
    from benchmarks.profile import summarise  # noqa: PLC0415

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (gateway/cli.py:1);parse (gateway/pipeline.py:5);parse (gateway/pipeline.py:9) 3\n"
        "main (gateway/cli.py:1) 1\n"
    )
    lines = summarise(raw, top=5).splitlines()
    assert lines[0] == "4 samples"
    inclusive = lines[lines.index("inclusive:") + 1:lines.index("self:")]
    own = lines[lines.index("self:") + 1:]
    assert inclusive == [" 100.0%  main cli.py", "  75.0%  parse pipeline.py"]
    assert own == ["  75.0%  parse pipeline.py", "  25.0%  main cli.py"]


def test_repeated_runs_report_each_flows_median_ratio() -> None:
    """``run.py --repeat N``: of each flow's N rows, the one with the median ratio (the lower
    middle of an even count); the flows keep their order."""
    from benchmarks.run import Row, medians  # noqa: PLC0415

    def run(placements: float, resend: float) -> list[Row]:
        return [Row("placements", 10, placements, 100.0, 5, 1.0),
                Row("resend", 10, resend, 100.0, 5, 1.0)]

    chosen = medians([run(9.0, 2.0), run(6.0, 7.0), run(8.0, 4.0)])
    assert [(r.flow, r.ratio) for r in chosen] == [("placements", 8.0), ("resend", 4.0)]
    assert [r.ratio for r in medians([run(9.0, 2.0), run(6.0, 7.0)])] == [6.0, 2.0]
