"""Jobs as resources: `systeme://jobs/{job_id}` (a job's state and, once finished, its report, as JSON) and
`systeme://exports/{job_id}.csv` (an export's file, in parts: `?part=2` …)."""

from __future__ import annotations

import json
import re

from mcp import types

from . import bounds
from .answers import STRING_BUDGET, STRUCTURED_BUDGET
from .exporter import read_export
from .job_tools import job_answer
from .jobs import JobRunner
from .runtime import Runtime

JOB = re.compile(r"^systeme://jobs/(job_[0-9a-f]{16})$")
TEMPLATES = [
    types.ResourceTemplate(
        uri_template="systeme://jobs/{job_id}",
        name="job",
        title="Job",
        description="A job's status and progress; when finished, its report.",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        uri_template="systeme://exports/{job_id}.csv",
        name="export",
        title="Contact export",
        description="An export_contacts file (CSV); long ones in parts: ?part=2, 3 …",
        mime_type="text/csv",
    ),
]


def job_uri(job_id: str) -> str:
    return f"systeme://jobs/{job_id}"


async def read_job_resource(runtime: Runtime, uri: str) -> types.ReadResourceResult | None:
    """The job or export `uri` names, or None when it names neither (or one that is not kept)."""
    jobs = runtime.jobs
    if not isinstance(jobs, JobRunner):
        return None
    if uri.startswith("systeme://exports/"):
        owner = re.match(r"^systeme://exports/(job_[0-9a-f]{16})\.csv", uri)
        if owner is None or await jobs.get(owner.group(1), runtime.account) is None:  # only this account's exports
            return None
        return await read_export(jobs.store, uri)
    match = JOB.match(uri)
    job = await jobs.get(match.group(1), runtime.account) if match else None
    if job is None:
        return None
    answer = await job_answer(jobs, job)
    body = {
        **(answer.structured_content or {}),
        "text": "\n".join(b.text for b in answer.content if isinstance(b, types.TextContent)),
    }
    body = json.loads(runtime.client.scrub(json.dumps(body, ensure_ascii=False)))  # secrets first
    if bounds.size(body) > STRUCTURED_BUDGET:  # a report of many rows, typed by strangers: bounded like an answer
        shrunk, _, notes = bounds.bound_structured(body, STRUCTURED_BUDGET - 1_000, STRING_BUDGET, "")
        body = {**shrunk, "truncated": True, "how": "; ".join(notes)}
    text = bounds.visible_json(body)
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
    )
