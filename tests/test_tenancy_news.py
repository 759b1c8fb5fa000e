"""Per-request tenancy (issue 14): news of a tenant's job reaches only that tenant. Real HTTP both ways, real MCP
clients of two tenants, in both eras (2025-11-25 resources/subscribe; 2026-07-28 subscriptions/listen): tenant B,
watching tenant A's job URI, hears nothing while A's job runs to its end, and A hears it. B's subscription is
accepted as one to a URI that names nothing would be: it tells B nothing, not even that the job exists.

Absence is checked as in test_subscriptions: a later update on B's own channel (a barrier) is awaited after A's
job finished, and everything sent to B before it has arrived by then."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from .helpers import Gate
from .processes import tls
from .test_jobs import contact_reads, until_finished
from .test_subscriptions import Updates, watching
from .test_tenancy import KeyRecorder, headers, tenant, tenant_server, upstream

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
__all__ = ["upstream"]  # the sandbox over HTTP, a fixture of this module too
TAGS = "systeme://tags"


def client_options(era: str, updates: Updates) -> dict[str, Any]:
    mode = "legacy" if era == "legacy" else "auto"
    return {"mode": mode, **({"message_handler": updates.handler} if era == "legacy" else {})}


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_only_the_jobs_own_tenant_hears_it_progress(upstream: tuple[str, KeyRecorder], era: str) -> None:
    url, _ = upstream
    gate = Gate(httpx2.AsyncHTTPTransport(verify=tls()), contact_reads)  # A's export waits here until both watch
    mine, theirs = Updates(), Updates()
    async with (
        tenant_server(url, "direct", transport=gate, call_budget=0.2) as (mcp_url, _),
        tenant(mcp_url, headers("direct", "a"), **client_options(era, mine)) as a,
        tenant(mcp_url, headers("direct", "b"), **client_options(era, theirs)) as b,
    ):
        started = await a.call_tool("export_contacts", {"columns": ["id", "email"]})
        job_id = (started.structured_content or {}).get("job_id")
        assert isinstance(job_id, str) and (started.structured_content or {})["status"] == "running", started
        uri = f"systeme://jobs/{job_id}"
        async with watching(a, era, mine, uri), watching(b, era, theirs, uri, TAGS):
            gate.opened.set()
            await mine.wait_for(uri)
            assert (await until_finished(a, job_id))["status"] == "done"
            assert not (await b.call_tool("create_tag", {"name": "b-barrier"})).is_error
            await theirs.wait_for(TAGS)
    assert theirs.uris == [TAGS]  # nothing of A's job, nor of anything A did
    assert set(mine.uris) == {uri}
