"""SMS without Twilio (issue 8): the SMS reads say the integration is not configured and where to set it up,
never that an id is wrong. Through real MCP client sessions in both protocol eras, with the sms toolset loaded
on a sandbox whose account has no Twilio connected (the default)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import Client

from .helpers import text

pytestmark = pytest.mark.anyio


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"toolsets": ["sms"]}


@pytest.mark.parametrize(
    ("tool", "status"),
    [("list_sms_message_services", "424"), ("list_sms_phone_numbers", "424"), ("get_twilio_account", "404")],
)
async def test_sms_without_twilio_says_where_to_configure_it(tool: str, status: str, mcp: Client) -> None:
    result = await mcp.call_tool(tool, {})
    message = text(result)  # a read's failure carries no structured content: the text is all there is
    assert result.is_error and status in message
    assert "Twilio (SMS) integration is not configured on this Systeme.io account" in message
    assert "Settings → Integrations → Twilio" in message
    assert not re.search(r"Not found \(404\).*does not exist", message), "must not read as a wrong id"
