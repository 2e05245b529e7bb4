"""Two students on the class hub, in Chromium: each logs in, runs a notebook and sees their own results;
neither can open the other's server or read the other's files; a student changes their password.

The hub runs beside a secure class server of its own (Kafka, MariaDB, Flink), started here on free
ports in a state folder every account may enter; it needs root, which makes Unix accounts wb-ann and
wb-ben (removed afterwards).
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers.classroom.classserver import ClassServer
from helpers.classroom.hub import PORTS, Hub, unix_name
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import load_settings
from helpers.infra.processes import free_port, free_port_block

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import enterable_by_all  # noqa: E402

STUDENTS = ("ann", "ben")
LOGIN_S = 180          # a server's first start: JupyterLab and the kernel on two busy cores
RUN_S = 180
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"        # the notebook in front, with its toolbar
NOTEBOOK = f"{PANEL} .jp-Notebook"
IN_FRONT = f"(document.querySelector({NOTEBOOK!r})?.innerText ?? '')"    # '' while it renders
# JupyterLab renders only the cells in view: scroll the notebook to its end (a cell's output at the end)
TO_END = f"document.querySelector('{PANEL} .jp-WindowedPanel-outer')?.scrollTo(0, 1e9)"


@pytest.fixture(scope="module")
def hub(settings, artifacts):
    """A class server with a hub for ann and ben; (hub, {login: first password})."""
    if settings.stack != "local":
        pytest.skip("starts a secure local class server beside the local stack")
    if os.geteuid() != 0:
        pytest.skip("the hub makes a Unix account per student: run as root")
    state = Path(tempfile.mkdtemp(prefix="workbook-hub-"))
    os.chmod(state, 0o755)
    (state / "libs").symlink_to(settings.state_dir / "libs")
    for needed in (PROJECT_ROOT, settings.state_dir / "libs"):
        enterable_by_all(needed)
    kafka, controller, mysql = free_port(), free_port(), free_port()
    instructor = load_settings({**os.environ, "WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(state),
                                "KAFKA_PORT": str(kafka), "KAFKA_CONTROLLER_PORT": str(controller),
                                "MYSQL_PORT": str(mysql)})
    server = ClassServer.for_settings(instructor)
    the_hub = Hub(server, free_port_block(PORTS))     # the hub, its API, the proxy's, Flink's
    try:
        handout = the_hub.up(server.up(list(STUDENTS)))
        with open(handout) as sheet:
            passwords = {row["login"]: row["first password"] for row in csv.DictReader(sheet)}
        yield the_hub, passwords
    finally:
        (artifacts / "hub.log").write_text(the_hub.log.read_text(errors="replace") if the_hub.log.is_file()
                                           else "")
        the_hub.down()
        server.down()
        for name in STUDENTS:
            subprocess.run(["userdel", "--remove", unix_name(name)], capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)


def log_in(browser, hub: Hub, login: str, password: str):
    """A fresh browser context logged in as `login`, on their JupyterLab (their server started)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(hub.url + "hub/login")
    page.fill("#username_input", login)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf".*/user/{login}/lab.*"), timeout=LOGIN_S * 1000)
    return page


def open_notebook(page, hub: Hub, login: str, name: str) -> None:
    """Open a notebook of the student's course copy and wait for its kernel."""
    page.goto(f"{hub.url}user/{login}/lab/tree/{name}?reset")      # only this notebook open
    page.wait_for_selector(NOTEBOOK, timeout=LOGIN_S * 1000)
    page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=LOGIN_S * 1000)


def run_all(page) -> None:
    """Run > Run All Cells, as a student would, with the notebook in focus; once more if the first code
    cell has not started 30 s later (seen once in ten: a click while JupyterLab still restored the
    notebook selected the last cell and ran nothing)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = (f"(document.querySelector('{PANEL} .jp-CodeCell .jp-InputPrompt')?.innerText ?? '')"
               ".trim() !== '[ ]:'")
    for attempt in (1, 2):
        page.locator(f"{NOTEBOOK} .jp-Cell").first.click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=30_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def run_new_cell(page, code: str, wanted: str, screenshot: Path) -> str:
    """Add a code cell below the notebook's first cell (always on screen: JupyterLab renders only the
    cells in view), put `code` in it and run it, as a student would; the notebook's text once `wanted`
    shows (a screenshot either way)."""
    count = page.locator(f"{NOTEBOOK} .jp-Cell").count()
    page.locator(f"{NOTEBOOK} .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")                           # a new cell below, in command mode
    page.wait_for_function(f"document.querySelectorAll('{NOTEBOOK} .jp-Cell').length > {count}",
                           timeout=30_000)
    editor = page.locator(f"{NOTEBOOK} .jp-Cell.jp-mod-active .cm-content")
    editor.click()
    editor.fill(code)
    page.keyboard.press("Shift+Enter")
    try:
        page.wait_for_function(f"{IN_FRONT}.includes({wanted!r})",
                               timeout=RUN_S * 1000)
    finally:
        page.screenshot(path=str(screenshot))
    return page.inner_text(NOTEBOOK)


def test_two_students_run_a_notebook_and_each_sees_their_own_topics(hub, chromium, artifacts):
    the_hub, passwords = hub
    pages = {name: log_in(chromium, the_hub, name, passwords[name]) for name in STUDENTS}
    for name, page in pages.items():
        open_notebook(page, the_hub, name, "00_setup.ipynb")
        run_all(page)
    for name, page in pages.items():
        try:
            page.wait_for_function(
                f"({TO_END}, {IN_FRONT}.includes('created empty:'))",
                timeout=RUN_S * 1000)
        finally:
            page.screenshot(path=str(artifacts / f"hub-{name}.png"))
        created = next(line for line in page.inner_text(NOTEBOOK).splitlines()
                       if line.startswith("created empty:"))
        other = next(n for n in STUDENTS if n != name)
        assert f"{name}.pricelist" in created and f"{other}." not in created, created
        assert "services up" in page.inner_text(NOTEBOOK)
        page.context.close()


def test_a_student_can_open_neither_anothers_server_nor_files_nor_the_solutions(hub, chromium, artifacts):
    the_hub, passwords = hub
    page = log_in(chromium, the_hub, "ann", passwords["ann"])
    answer = page.goto(f"{the_hub.url}user/ben/lab")
    assert answer is not None and answer.status == 403, (answer and answer.status, page.url)
    assert "/user/ben/lab" not in page.url or answer.status == 403

    open_notebook(page, the_hub, "ann", "01_ingestion.ipynb")
    paths = ["/home/wb-ann/.env", "/home/wb-ben/.env", "/home/wb-ben/course", str(PROJECT_ROOT / "solutions")]
    text = run_new_cell(page, f"import os; print('readable:', [os.access(p, os.R_OK) for p in {paths!r}])",
                        "readable: [", artifacts / "hub-ann-refused.png")
    assert "readable: [True, False, False, False]" in text, text     # her own .env only
    page.context.close()


def test_a_students_sql_runs_on_the_class_flink_through_its_gateway_with_no_jvm_of_hers(
        hub, chromium, artifacts):
    """Her server's .env names the class's SQL Gateway: a query she types is planned there and runs on
    the class's cluster, and her kernel starts no JVM."""
    the_hub, passwords = hub
    page = log_in(chromium, the_hub, "ann", passwords["ann"])
    open_notebook(page, the_hub, "ann", "01_ingestion.ipynb")
    code = ("import psutil\n"
            "from helpers import Workbook, run_sql\n"
            "wb = Workbook.from_env()\n"
            "[r] = run_sql(wb, \"SELECT ticker, COUNT(*) AS n FROM (VALUES ('AAPL'), ('AAPL'), ('MSFT'))"
            " AS t(ticker) GROUP BY ticker\")\n"
            "jvms = [p for p in psutil.Process().children(recursive=True) if p.name().startswith('java')]\n"
            "print('counted:', sorted(zip(r.table['ticker'], r.table['n'].astype(int))), 'jvms:', len(jvms))")
    text = run_new_cell(page, code, "] jvms: ", artifacts / "hub-ann-sql.png")     # not in the code
    assert "counted: [('AAPL', 2), ('MSFT', 1)] jvms: 0" in text, text
    jobs = [job["name"] for job in the_hub.flink.jobs()]
    assert any(name.startswith("ann: sql (pid ") for name in jobs), jobs
    page.context.close()


def test_a_student_changes_their_password_and_logs_in_with_the_new_one(hub, chromium):
    the_hub, passwords = hub
    page = log_in(chromium, the_hub, "ben", passwords["ben"])
    page.goto(the_hub.url + "hub/change-password")
    new = "a-new-password-of-ben-" + os.urandom(4).hex()
    page.fill("#old_password_input", passwords["ben"])
    page.fill("#new_password_input", new)
    page.fill("#new_password_confirmation_input", new)
    page.get_by_role("button", name=re.compile("change password", re.I)).click()
    page.wait_for_function("(document.body?.innerText ?? '').toLowerCase().includes('changed successfully')",
                           timeout=30_000)
    page.context.close()
    with pytest.raises(Exception, match="Timeout"):
        log_in_quickly(chromium, the_hub, "ben", passwords["ben"])
    log_in(chromium, the_hub, "ben", new).context.close()


def log_in_quickly(browser, hub: Hub, login: str, password: str) -> None:
    """Try to log in; a refused password leaves the login page, so this times out in 10 s."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(hub.url + "hub/login")
        page.fill("#username_input", login)
        page.fill("#password_input", password)
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf".*/user/{login}/.*"), timeout=10_000)
    finally:
        context.close()
