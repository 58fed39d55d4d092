"""IAP_FORWARDED_ALLOW_IPS: the proxies ``iap serve`` believes about the client's address and
scheme. uvicorn quietly ignores an entry it cannot parse, which would make every client look
like the proxy; iap refuses such a value at start-up instead. (The topology test proves the
setting at work behind nginx.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from iap.config import ConfigError, Settings, load_settings


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("127.0.0.1,::1", "127.0.0.1,::1"),
        (" 10.0.0.0/8 , 192.168.1.7 ", "10.0.0.0/8,192.168.1.7"),
        ("fd00::/8", "fd00::/8"),
        ("10.0.0.0/8,*", "*"),
        ("", ""),
    ],
)
def test_addresses_and_networks_are_accepted(value: str, kept: str) -> None:
    settings = Settings(_env_file=None, forwarded_allow_ips=value)  # type: ignore[call-arg]
    assert settings.forwarded_allow_ips == kept


def test_the_default_trusts_only_this_machine() -> None:
    assert Settings(_env_file=None).forwarded_allow_ips == "127.0.0.1,::1"  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["nginx", "10.0.0.1/8", "10.0.0.300", "127.0.0.1;10.0.0.1"])
def test_a_value_uvicorn_would_ignore_stops_start_up(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IAP_FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ConfigError, match="IAP_FORWARDED_ALLOW_IPS") as raised:
        load_settings(data_dir=tmp_path)
    assert "\n" not in str(raised.value)
