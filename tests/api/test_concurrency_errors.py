"""A transaction PostgreSQL aborts for a concurrent one answers 409 (retry), not 500."""

from __future__ import annotations

import asyncio
import json

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from api.errors import _operational_error


@pytest.mark.parametrize(("error", "word"), [
    (psycopg.errors.DeadlockDetected("deadlock detected"), "deadlock"),
    (psycopg.errors.SerializationFailure("could not serialize"), "serialization failure")])
def test_deadlocks_and_serialization_failures_are_409(error: Exception, word: str) -> None:
    answer = asyncio.run(_operational_error(None, OperationalError("SELECT", {}, error)))  # type: ignore[arg-type]
    assert answer.status_code == 409
    detail = json.loads(bytes(answer.body))["detail"]
    assert word in detail["message"] and detail["valid"] == "the same request again"


def test_other_operational_errors_stay_server_errors() -> None:
    lost = OperationalError("SELECT", {}, psycopg.errors.AdminShutdown("terminating"))
    with pytest.raises(OperationalError):
        asyncio.run(_operational_error(None, lost))  # type: ignore[arg-type]


def test_a_value_too_large_to_store_is_413() -> None:
    huge = psycopg.errors.ProgramLimitExceeded("string too long to represent as jsonb string")
    answer = asyncio.run(_operational_error(None, OperationalError("INSERT", {}, huge)))  # type: ignore[arg-type]
    assert answer.status_code == 413
    assert "too large" in json.loads(bytes(answer.body))["detail"]["message"]
