"""Front-end assets installed from the npm registry at setup time and served by our app.

No page of patrolgrid loads anything from a CDN: ``make setup`` runs ``npm ci``
in the project root and the app serves ``node_modules`` under ``/vendor``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "node_modules"

#: npm package -> the files a page needs from it, relative to the package folder.
REQUIRED: dict[str, tuple[str, ...]] = {
    "swagger-ui-dist": ("swagger-ui-bundle.js", "swagger-ui.css"),
}


def missing_assets(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The required asset files not present under ``vendor_dir`` (empty when all are there)."""
    return [f"{pkg}/{name}" for pkg, names in REQUIRED.items() for name in names
            if not (vendor_dir / pkg / name).is_file()]
