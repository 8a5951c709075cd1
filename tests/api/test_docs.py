"""The API docs are served from our own assets, never from a CDN."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from maps.assets import missing_assets


def test_npm_assets_are_installed() -> None:
    assert missing_assets() == []


def test_docs_page_loads_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert urls, "the docs page references no assets"
    for url in urls:
        assert url.startswith("/"), f"{url} is not served by us"
        if url.startswith("/vendor/"):
            assert client.get(url).status_code == 200, url
