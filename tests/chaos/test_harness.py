"""The chaos tests' harness: a server binary that is missing skips them, or fails them where
the services are required (CI), so that a machine without them cannot pass them silently."""

from __future__ import annotations

import pytest

from tests.chaos.harness import binary

pytestmark = pytest.mark.chaos

MISSING = "iap-no-such-server-binary"


def test_a_missing_binary_fails_where_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IAP_TEST_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        binary(MISSING)


def test_a_missing_binary_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IAP_TEST_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        binary(MISSING)
