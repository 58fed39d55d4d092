"""What the CLI tests share: a clean environment and the shape of a one-line error."""

from __future__ import annotations

from typer.testing import Result

from iap.cli.main import PROGRESS_VARIABLE
from iap.config import Settings

# Every variable the CLI reads, unset: nothing from the surrounding environment leaks in.
CLEAN_ENV: dict[str, str | None] = {
    **{f"IAP_{name.upper()}": None for name in Settings.model_fields},
    **dict.fromkeys(("IAP_SERVER", "IAP_TOKEN", "IAP_API_KEY", "IAP_NEW_USER_PASSWORD")),
    PROGRESS_VARIABLE: None,
}


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    """Exit ``code``, nothing on stdout, one ``error:`` line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]
