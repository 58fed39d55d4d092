"""Outages of a dependency under a running API (an ``iap serve`` process), on private servers:

- PostgreSQL stopped for ``IAP_CHAOS_DB_OUTAGE_SECONDS`` (10 s): every request that needs the
  database answers 503 ``database_unavailable`` with ``Retry-After``, promptly; once the
  database is back the same process answers 200 again, without a restart.
- Redis (the cache) stopped: the API keeps serving from the database; once Redis is back the
  cache is filled and read again.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.client import Api, distinct_png
from tests.chaos.conftest import Processes, Report, chaos_settings
from tests.chaos.harness import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.chaos

DB_OUTAGE_SECONDS = float(os.environ.get("IAP_CHAOS_DB_OUTAGE_SECONDS", "10"))
# A request during an outage must be answered, not left hanging until the client gives up.
PROMPT_SECONDS = 10.0


def blob_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_database_outage_answers_503_with_retry_after_then_recovers_without_restart(
    private_postgres: PrivatePostgres,
    processes: Callable[..., Processes],
    tmp_path: Path,
    report: Report,
) -> None:
    settings = chaos_settings(tmp_path, private_postgres.url)
    server = processes(settings).start("serve", port=True)
    server.wait_until_serving()
    api = Api.signed_up(server.url, timeout=PROMPT_SECONDS)
    image = api.uploaded(distinct_png(1), "before.png")
    assert api.wait_for(image["id"], {"succeeded", "failed"}) == "succeeded"
    blobs_before = blob_files(tmp_path / "blobs")

    private_postgres.stop()
    stopped = time.monotonic()
    answers: Counter[tuple[str, int]] = Counter()
    slowest = 0.0
    while time.monotonic() - stopped < DB_OUTAGE_SECONDS:
        for what, send in (
            ("metadata", lambda: api.get(f"/image/{image['id']}")),
            ("list", lambda: api.get("/image/all")),
            ("upload", lambda: api.upload(distinct_png(2), "during.png")),
        ):
            began = time.monotonic()
            response = send()
            slowest = max(slowest, time.monotonic() - began)
            answers[what, response.status_code] += 1
            assert response.status_code == 503, (what, response.status_code, response.text)
            assert response.json()["code"] == "database_unavailable", response.text
            assert isinstance(response.json()["detail"], str)
            assert int(response.headers["retry-after"]) > 0
        ready = api.http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["database"] != "ok"
        assert api.http.get("/healthz").status_code == 200  # alive: no reason to restart it
        time.sleep(0.5)
    outage = time.monotonic() - stopped
    assert blob_files(tmp_path / "blobs") == blobs_before  # refused uploads left nothing

    private_postgres.start()
    back = time.monotonic()
    while (response := api.get(f"/image/{image['id']}")).status_code != 200:
        assert response.status_code == 503, response.text
        assert time.monotonic() - back < 30, "the API did not recover from the outage"
        time.sleep(0.2)
    recovered = time.monotonic() - back
    assert server.proc.poll() is None  # the same process, never restarted
    assert api.http.get("/readyz").status_code == 200
    after = api.uploaded(distinct_png(3), "after.png")
    assert api.wait_for(after["id"], {"succeeded", "failed"}) == "succeeded"
    refused = sum(answers.values())
    report(
        f"chaos: database outage {outage:.1f}s: {refused} requests answered 503 with "
        f"Retry-After (slowest {slowest:.2f}s); recovered {recovered:.1f}s after the restart "
        "of PostgreSQL, same API process"
    )


def test_cache_outage_serves_from_the_database_then_uses_the_cache_again(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    processes: Callable[..., Processes],
    tmp_path: Path,
    report: Report,
) -> None:
    settings = chaos_settings(tmp_path, private_postgres.url, redis_url=private_redis.url)
    server = processes(settings).start("serve", port=True)
    server.wait_until_serving()
    api = Api.signed_up(server.url, timeout=PROMPT_SECONDS)
    image = api.uploaded(distinct_png(4), "cached.png")
    assert api.wait_for(image["id"], {"succeeded", "failed"}) == "succeeded"
    key = f"{settings.redis_prefix}cache:image:{image['id']}"
    redis = private_redis.client()
    wait_until_cached(api, image["id"], redis, key, "before the outage")
    redis.close()

    private_redis.kill()
    served = 0
    stopped = time.monotonic()
    while time.monotonic() - stopped < 6:  # longer than the cache's circuit breaker
        response = api.get(f"/image/{image['id']}")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == image["id"]
        assert api.get("/image/all").json()["total"] >= 1
        served += 2
        time.sleep(0.2)
    during = api.uploaded(distinct_png(5), "during.png")
    assert api.wait_for(during["id"], {"succeeded", "failed"}) == "succeeded"
    served += 1

    private_redis.start()  # empty: a restarted cache remembers nothing
    redis = private_redis.client()
    back = time.monotonic()
    wait_until_cached(api, image["id"], redis, key, "after the outage")
    refilled = time.monotonic() - back
    # And reads come from it: a value planted in the cache is what the API answers.
    planted = api.get(f"/image/{image['id']}").json() | {"description": "planted in the cache"}
    ttl = redis.ttl(key)
    redis.set(key, json.dumps(planted), ex=max(ttl, 60))
    assert api.get(f"/image/{image['id']}").json()["description"] == "planted in the cache"
    redis.close()
    report(
        f"chaos: cache outage: {served} requests served from the database while Redis was "
        f"down; cache filled again {refilled:.1f}s after Redis came back, and read from"
    )


def wait_until_cached(api: Api, image_id: str, redis: Any, key: str, when: str) -> None:
    """Read the image until its metadata is in the cache. Not at the first read, necessarily:
    the circuit breaker skips Redis for a few seconds after a failure, and a fill is void when
    an invalidation (the end of the image's analysis) came after the read began."""
    deadline = time.monotonic() + 30
    while not redis.exists(key):
        assert api.get(f"/image/{image_id}").status_code == 200
        assert time.monotonic() < deadline, f"the API did not use the cache {when}"
        time.sleep(0.2)
