"""The jobs and agents view against a real ``mltrail agent`` process: the queue with every
state (and a warning on a queue no agent serves), live without a reload, filters in the URL,
a job's own page with its output and a stop button, and the agents list."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from ui_seed import SCREENSHOTS, UiServer

pytestmark = pytest.mark.browser

LIVE_MS = 30_000  # the page polls every 3 s; the agent long-polls and starts a Python child
JOB = (
    "import time; print('hello from the job', flush=True); time.sleep(4); print('bye', flush=True)"
)


@pytest.fixture
def agent(ui_server: UiServer, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real agent serving a queue of its own, named after it; killed at the end."""
    import os

    queue = f"ui-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {
        "MLTRAIL_URL": ui_server.url,
        "MLTRAIL_TOKEN": ui_server.token,
        "MLTRAIL_HOME": str(tmp_path),
    }
    args = [
        "agent",
        "--queue",
        queue,
        "--name",
        f"box-{queue}",
        "--lease-timeout",
        "5",
        "--poll",
        "2",
        "--job-user",  # its jobs run the test's Python, which root's job user may not reach
        str(os.geteuid()),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltrail", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "agent.stderr").open("wb"),
        start_new_session=True,
    )
    yield queue, proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_jobs_queue_states_logs_and_agents(page, ui_server, agent) -> None:
    queue, _ = agent
    store = ui_server.store
    project = store.create_project(f"jobs-{queue}").id
    nobody = f"nobody-{queue}"
    waiting = store.submit_job(project, [sys.executable, "-c", "print(1)"], queue=nobody)
    job = store.submit_job(project, [sys.executable, "-c", JOB], queue=queue, env={"LR": "0.1"})

    page.goto(f"{ui_server.url}/#/projects/{project}")
    page.locator(".page-head a", has_text="Jobs").click()
    expect(page).to_have_url(re.compile(rf"#/jobs\?project={project}$"))
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(2)
    unserved = page.locator(f"tr[data-job-id='{waiting.job_id}']")
    expect(unserved.locator(".status")).to_have_text("queued")
    expect(unserved.locator(".unserved")).to_have_text("no agent")
    expect(page.locator(".jobs-summary")).to_contain_text("1 waiting for an agent")

    # the agent claims and runs its job while the page is open
    row = page.locator(f"tr[data-job-id='{job.job_id}']")
    expect(row.locator(".status")).to_have_text("done", timeout=LIVE_MS)
    expect(row.locator("td", has_text=f"box-{queue}")).to_have_count(1)
    expect(row.locator(".unserved")).to_have_count(0)
    agent_row = page.locator("table.agents tr", has_text=f"box-{queue}")
    expect(agent_row.locator(".agent-state")).to_have_text("online")
    expect(agent_row).to_contain_text(queue)
    page.mouse.move(0, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "jobs-view.png"))

    # filters narrow the list and live in the URL
    page.select_option("select[name='job-status']", "queued")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"status=queued"))
    page.reload()
    expect(page.locator("select[name='job-status']")).to_have_value("queued")
    expect(rows).to_have_count(1)

    # a job's own page: where it ran, how it ended, its output
    page.goto(f"{ui_server.url}/#/jobs/{job.job_id}")
    expect(page.locator("main h1 .status")).to_have_text("done")
    facts = page.locator(".job-head .facts")
    expect(facts).to_contain_text("Exit code0")
    expect(page.locator(".job-command")).to_contain_text("hello from the job")
    expect(page.locator(".job-env")).to_contain_text("LR")
    lines = page.locator(".log-line .log-message")
    expect(lines.filter(has_text="hello from the job")).to_have_count(1)
    expect(lines.filter(has_text="bye")).to_have_count(1)
    expect(page.locator(".job-stop")).to_be_disabled()
    page.locator(".job-head .facts a", has_text=f"#{job.experiment_id}").click()
    expect(page.locator("main h1 .status")).to_have_text("done")

    # stopping the job nobody runs
    page.goto(f"{ui_server.url}/#/jobs/{waiting.job_id}")
    expect(page.locator(".job-head .unserved")).to_contain_text(f"mltrail agent --queue {nobody}")
    page.locator(".job-stop").click()
    expect(page.locator(".job-stop")).to_be_disabled()
    expect(page.locator(".job-stop")).to_have_text("Stop requested")
    expect(page.locator(".stop-requested")).to_contain_text("no agent will run this job")
    assert store.get_experiment(project, waiting.experiment_id).stop_requested
    page.reload()
    expect(page.locator(".job-stop")).to_be_disabled()  # read back from the server
    assert page.errors == []
