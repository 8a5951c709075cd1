"""A request body held in memory is limited like an upload (PATROLGRID_MAX_UPLOAD_MB).

JSON bodies had no limit: a 270 MiB ``attrs`` reached PostgreSQL (a 500), and the
server read any size into memory first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from geo.settings import Settings
from geo.store.db import session_scope

Auth = Callable[[str], dict[str, str]]


def _incidents(db_url: str) -> int:
    with session_scope(db_url) as s:
        return int(s.execute(text("SELECT count(*) FROM incident")).scalar_one())


def test_a_json_body_over_the_limit_is_413_declared_or_streamed(db_url: str, auth: Auth) -> None:
    body = json.dumps({"lon": 119.3, "lat": 26.08, "category": "E0101", "source": "app",
                       "attrs": {"x": "y" * (1 << 20)}}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for k in range(0, len(body), 65536):
            yield body[k:k + 65536]

    headers = {**auth("dispatcher"), "Content-Type": "application/json"}
    with TestClient(create_app(Settings(database_url=db_url, max_upload_mb=1))) as small:
        declared = small.post("/api/v1/incidents", content=body, headers=headers)
        streamed = small.post("/api/v1/incidents", content=chunks(), headers=headers)
        posing = small.post("/api/v1/incidents", content=b"x" * (18 << 20), headers={
            **headers, "Content-Type": "multipart/form-data; boundary=xx"})  # not an upload
        fine = small.post("/api/v1/incidents", headers=headers, content=json.dumps(
            {"lon": 119.3, "lat": 26.08, "category": "nope", "source": "app"}))
    for answer in (declared, streamed, posing):
        assert answer.status_code == 413, answer.text
        detail = answer.json()["detail"]
        assert detail["field"] == "body" and "PATROLGRID_MAX_UPLOAD_MB" in detail["valid"]
    assert fine.status_code == 422  # a small body goes through to the checks
    assert _incidents(db_url) == 0
