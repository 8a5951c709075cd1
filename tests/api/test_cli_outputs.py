"""CLI commands that write files: an unwritable path or a bad request is refused before
anything is done (exit 2, a message naming the option), never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]
MISSING = "/tmp/patrolgrid-no-such-folder/out"


@pytest.mark.parametrize("args", [
    ("incidents", "export", f"{MISSING}.csv"),
    ("routes", "export", f"{MISSING}.geojson"),
    ("grids", "export", f"{MISSING}.geojson"),
    ("roster", "export", f"{MISSING}.csv"),
    ("maps", "render", "heatmap", "--out", f"{MISSING}.html"),
    ("routes", "plan", "--length-m", "500", "--grid", "G1", "--out", f"{MISSING}.geojson"),
    ("grids", "import", __file__, "--code-field", "c", "--report", f"{MISSING}.json"),
])
def test_a_file_in_a_missing_folder_is_refused(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "does not exist or is not writable" in out and "Traceback" not in out, out
    assert not Path(MISSING).parent.exists()


@pytest.mark.parametrize("args", [
    ("incidents", "export", "/proc/out.csv"),
    ("roster", "export", "/proc/out.csv"),
    ("grids", "export", "/proc/out.geojson"),
    ("maps", "render", "heatmap", "--out", "/proc/out.html"),
    ("incidents", "import", __file__, "--dry-run", "--report", "/proc/out.csv"),
])
def test_a_folder_no_file_can_be_made_in_is_refused_even_for_root(cli: Cli,
                                                                  args: tuple[str, ...]) -> None:
    """``os.access`` says root may write anywhere, /proc and read-only mounts included: the
    commands got past the check and ended in a traceback."""
    result = cli(*args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "does not exist or is not writable" in out and "Traceback" not in out, out


def test_routes_export_names_the_formats_it_writes(cli: Cli, tmp_path: Path) -> None:
    result = cli("routes", "export", tmp_path / "routes.gpkg")
    assert result.exit_code == 2 and ".geojson or .json" in result.output, result.output
    assert not (tmp_path / "routes.gpkg").exists()
    assert cli("routes", "export", tmp_path / "routes.geojson").exit_code == 0


def test_incidents_export_refuses_an_empty_window_and_keeps_the_old_file(
        cli: Cli, tmp_path: Path) -> None:
    old = tmp_path / "incidents.csv"
    old.write_text("kept\n", encoding="utf-8")
    result = cli("incidents", "export", old, "--from", "2026-12-01", "--to", "2026-11-01")
    assert result.exit_code == 2 and "--to" in result.output, result.output
    assert old.read_text(encoding="utf-8") == "kept\n"


@pytest.mark.parametrize(("option", "value"), [("--from", "1960-01-01"), ("--to", "2300-01-01")])
def test_incidents_export_refuses_a_moment_out_of_range(cli: Cli, tmp_path: Path, option: str,
                                                         value: str) -> None:
    """Every other time parameter refuses moments outside 1970-2199; the export took them."""
    result = cli("incidents", "export", tmp_path / "out.csv", option, value)
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and option in out and "1970-01-01" in out, out
    assert not (tmp_path / "out.csv").exists()
