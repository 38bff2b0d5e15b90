"""The Dagster UI after a real backfill, seen through headless Chromium.

`dg dev` (webserver, daemon, code server) runs as a subprocess on a free port, with the
instance on a fresh database of the embedded PostgreSQL and the repository's dagster.yaml and
workspace.yaml. A 3-day backfill of the ten daily assets (one run: BackfillPolicy.single_run) goes
through GraphQL against the API emulator; then Chromium (Debian's `chromium`, installed by
scripts/install-browser.sh) opens the asset graph, each asset's partitions view and the checks
views, and the test asserts what a person would look for there. Screenshots and the
`dg dev` log go to the test's tmp folder and to test-output/ui/ at the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS
from carbon_assets_tests.postgres_helpers import drop_database
from carbon_assets_tests.ui.dagster_dev import REPO_ROOT, DagsterDev

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("CARBON_CHROMIUM", "/usr/bin/chromium")
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-browser.sh"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS_DIR = REPO_ROOT / "test-output" / "ui"  # git-ignored; for a person to look at

GROUP = "carbon_intensity"
# The daily layers, regional and national: the group a researcher backfills.
ASSET_KEYS = [key.to_user_string() for asset in ALL_ASSETS for key in asset.keys]
PARTITIONS = ["2024-03-01", "2024-03-02", "2024-03-03"]
# Every check the definitions declare, by asset: all of them must show as passed.
CHECKS: dict[str, list[str]] = {}
for _checks in ALL_CHECKS:
    for _spec in _checks.check_specs:
        CHECKS.setdefault(_spec.asset_key.to_user_string(), []).append(_spec.name)

LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"

STARTUP_TIMEOUT = 120  # s until the webserver answers with the daily assets
BACKFILL_TIMEOUT = 300  # s for the backfill (its daemon ticks every 30 s) and its one run
UI_TIMEOUT = 30_000  # ms for anything to show up in the browser


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium: installed by scripts/install-browser.sh when missing and we are root;
    otherwise the test is skipped (a non-root machine cannot install it).

    Session-scoped so that pytest sets it up before the other session fixtures (emulator,
    embedded PostgreSQL) and a machine without a browser skips before starting anything."""
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if Path(CHROMIUM).exists():
        return CHROMIUM
    result = subprocess.run(
        [str(INSTALL_SCRIPT)], check=False, capture_output=True, text=True, timeout=600
    )
    if Path(CHROMIUM).exists():
        return CHROMIUM
    output = (result.stdout + result.stderr).strip()
    if os.geteuid() == 0 or os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} missing and scripts/install-browser.sh failed:\n{output}")
    pytest.skip(f"{CHROMIUM} is missing and cannot be installed without root: {output}")


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


# --- dg dev with a finished backfill ------------------------------------------------


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> Path:
    """The test's own output folder (under pytest's tmp); test-output/ui/ gets copies."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    for old in SHOTS_DIR.glob("*.png"):
        old.unlink()
    return tmp_path_factory.mktemp("ui_output")


@dataclass(frozen=True)
class Backfilled:
    """dg dev, and the backfill it ran."""

    dev: DagsterDev
    backfill_id: str

    @property
    def base_url(self) -> str:
        return self.dev.base_url

    def group_lineage_path(self, group: str) -> str:
        """The lineage of one group, expanded (the global lineage shows groups collapsed)."""
        (location,) = self.dev.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        return f"/locations/__repository__@{location['name']}/asset-groups/{group}"


@pytest.fixture(scope="module")
def dagster_ui(chromium_path, emulator, embedded_dir, output_dir):
    """`dg dev` (as `carbon-assets dev` runs it) on a free port after a successful 3-day
    backfill of the ten daily assets.

    Depends on chromium_path so that a machine without a browser skips before the slow part.
    Its DAGSTER_HOME and lake live in a temp dir of their own, not under pytest's basetemp,
    which a concurrent pytest session may prune while dg dev still uses it.
    """
    from carbon_assets.postgres.embedded import embedded_database_url

    work = Path(tempfile.mkdtemp(prefix="carbon-ui-test-"))
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    # The "join the community" dialog covers the UI until dismissed once per DAGSTER_HOME.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")

    tag = uuid.uuid4().hex[:10]
    instance_db, warehouse_db = f"dagster_ui_{tag}", f"carbon_ui_{tag}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_URL=embedded_database_url(embedded_dir, instance_db, driver=None),
        CARBON_DATABASE_URL=embedded_database_url(embedded_dir, warehouse_db),
        CARBON_DATA_DIR=str(work / "data"),
        CARBON_API_BASE_URL=emulator.base_url,
    )

    dev = DagsterDev(env, log_path=output_dir / "dg-dev.log")
    started = time.monotonic()
    dev.start()
    try:
        ready_after = dev.wait_until_ready(ASSET_KEYS, timeout=STARTUP_TIMEOUT)
        dev.wait_for_daemon(timeout=60)
        backfill_id = dev.launch_backfill(ASSET_KEYS, PARTITIONS)
        # Wait for the backfill's run; the backfill's own "completed" status comes with the
        # daemon's next tick, up to 30 s later: test_backfill_completed (last) waits for it.
        backfill = dev.wait_for_backfill(backfill_id, timeout=BACKFILL_TIMEOUT, runs_only=True)
        problems = "\n".join(dev.run_problems(run["runId"]) for run in backfill["runs"])
        assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"], (
            f"backfill {backfill_id} ({backfill['status']}): expected one successful run "
            f"(single-run backfill policy), got {backfill['runs']} {backfill.get('error') or ''}\n"
            f"{problems}"
        )
        print(
            f"dg dev ready in {ready_after:.0f} s; the backfill's run done after "
            f"{time.monotonic() - started:.0f} s"
        )
        yield Backfilled(dev, backfill_id)
    finally:
        leftovers = dev.stop()
        shutil.copy(dev.log_path, SHOTS_DIR / "dg-dev.log")
        still_running = dev.remaining_processes()
        for name in (instance_db, warehouse_db):
            drop_database("embedded", embedded_dir, name)
        shutil.rmtree(work, ignore_errors=True)
        assert not still_running, f"processes of dg dev still running: {still_running}"
        if leftovers:
            print(f"killed processes that had left dg dev's process group: {leftovers}")


@pytest.fixture
def page(browser, dagster_ui):
    """A fresh tab; twice the pixels of the 1600x1000 viewport, so a zoomed-in screenshot
    of the small graph nodes is still legible."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT)  # the default 5 s is short on a busy CI machine
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    if errors:
        print("JavaScript errors in the Dagster UI:\n" + "\n".join(errors))
    context.close()


def screenshot(page, output_dir: Path, name: str, clip: dict | None = None) -> Path:
    path = output_dir / f"{name}.png"
    page.screenshot(path=str(path), clip=clip)
    shutil.copy(path, SHOTS_DIR / path.name)
    return path


def open_page(page, dagster_ui: Backfilled, path: str) -> None:
    page.goto(dagster_ui.base_url + path, wait_until="domcontentloaded")
    # Should the community dialog show anyway, get it out of the way.
    skip = page.get_by_role("button", name="Skip")
    if skip.count() and skip.is_visible():
        skip.click()


# --- what a person would look for ---------------------------------------------------------


def test_asset_graph_shows_the_assets_and_passing_checks(page, dagster_ui, output_dir):
    from playwright.sync_api import expect

    open_page(page, dagster_ui, dagster_ui.group_lineage_path(GROUP))
    nodes = page.locator('[class*="AssetNode_assetNodeBox"]')
    for key in ASSET_KEYS:
        # By its links: the node shortens a long name in the middle ("carbon_int…_halfhourly").
        node = nodes.filter(has=page.locator(f'a[href*="/assets/{key}?"]')).first
        expect(node, f"graph node of {key}").to_be_visible()
        # "Latest event  a minute ago": a time only an asset with a materialization has.
        expect(node, f"{key} materialized").to_contain_text(re.compile(r"Latest event.{0,40}ago"))
        if key in CHECKS:
            n = len(CHECKS[key])
            expect(node, f"checks of {key}").to_contain_text(f"{n} / {n} Passed")
    page.wait_for_timeout(500)  # let the graph finish its zoom-to-fit before the screenshot
    screenshot(page, output_dir, "01-asset-graph")
    # And the nodes alone, close up.
    boxes = [box for box in (nodes.nth(i).bounding_box() for i in range(nodes.count())) if box]
    left, top = min(b["x"] for b in boxes) - 20, min(b["y"] for b in boxes) - 20
    right = max(b["x"] + b["width"] for b in boxes) + 20
    bottom = max(b["y"] + b["height"] for b in boxes) + 40  # the kind tags hang below
    clip = {"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top}
    screenshot(page, output_dir, "01-asset-graph-nodes", clip=clip)


@pytest.mark.parametrize("key", ASSET_KEYS)
def test_partitions_view_shows_three_materialized_days(page, dagster_ui, output_dir, key):
    from playwright.sync_api import expect

    open_page(page, dagster_ui, f"/assets/{key}?view=partitions")
    expect(page.get_by_text(re.compile(r"^Materialized \(3\)$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Failed \(0\)$"))).to_be_visible()
    # Hide the missing partitions: what is left are the three backfilled days.
    # (The checkbox input itself is visually hidden: click its label.)
    missing = re.compile(r"^Missing \(\d+\)$")
    page.get_by_text(missing).click()
    expect(page.get_by_role("checkbox", name=missing)).not_to_be_checked()
    expect(page.get_by_text(re.compile(r"^3 Partitions Selected$"))).to_be_visible()
    for day in PARTITIONS:
        expect(page.get_by_text(day, exact=True).first).to_be_visible()
    screenshot(page, output_dir, f"02-partitions-{key}")


@pytest.mark.parametrize("key", list(CHECKS))
def test_checks_view_shows_every_check_passed(page, dagster_ui, output_dir, key):
    from playwright.sync_api import expect

    open_page(page, dagster_ui, f"/assets/{key}?view=checks")
    expect(page.get_by_text(f"Checks ({len(CHECKS[key])})", exact=True)).to_be_visible()
    rows = page.locator('[class*="checkRow"]')
    for check in CHECKS[key]:
        row = rows.filter(has=page.get_by_text(check, exact=True))
        expect(row, f"check {check}").to_contain_text("Succeeded")
    # The first check's details are open on the right.
    expect(page.get_by_text("Evaluation result", exact=True)).to_be_visible()
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    screenshot(page, output_dir, f"03-checks-{key}")


# A column of each tabular asset and the words its Columns section must show for it.
DESCRIBED = {
    "silver_carbon_intensity": ("missing_fuels", "Known fuels the API left out"),
    "gold_carbon_intensity_daily": ("half_hours", "Number of half-hour periods"),
    "carbon_intensity_daily": ("index_mode", "ties go to the higher-carbon label"),
    "carbon_intensity_halfhourly": ("period_start", "UTC start of the half-hour period"),
}


@pytest.mark.parametrize("key", list(DESCRIBED))
def test_the_columns_are_explained_before_anyone_asks(page, dagster_ui, output_dir, key):
    from playwright.sync_api import expect

    column, words = DESCRIBED[key]
    open_page(page, dagster_ui, f"/assets/{key}")
    expect(page.get_by_text(column, exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(re.escape(words))).first).to_be_visible()
    screenshot(page, output_dir, f"05-columns-{key}")


def test_the_warehouse_run_shows_a_preview_and_two_charts(page, dagster_ui, output_dir):
    from playwright.sync_api import expect

    open_page(page, dagster_ui, "/assets/carbon_intensity_daily?view=events")
    # The run's observation of its last day sits beside that day's materialization.
    last_day = page.get_by_text(PARTITIONS[-1], exact=True)
    expect(last_day.first).to_be_visible()
    for index in range(last_day.count()):
        last_day.nth(index).click()
        if page.get_by_text("intensity_heatmap", exact=True).count():
            break
    expect(page.get_by_text("intensity_heatmap", exact=True).first).to_be_visible()
    screenshot(page, output_dir, "06-warehouse-observation")
    shown = {
        "preview": page.get_by_role("dialog").get_by_text("North Scotland"),
        "intensity_heatmap": page.locator('img[alt="Carbon intensity by region and day"]'),
        "gb_fuel_mix": page.locator('img[alt="GB generation mix by day"]'),
    }
    for name, content in shown.items():
        row = page.locator("tr").filter(has=page.get_by_text(name, exact=True)).first
        row.get_by_text("[Show Markdown]").click()  # Markdown metadata opens in a dialog
        expect(content.first).to_be_visible()
        if name != "preview":  # a real picture, not a broken image
            assert content.first.evaluate("img => img.naturalWidth") > 300, name
        page.wait_for_timeout(500)
        screenshot(page, output_dir, f"06-{name}")
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)


def test_backfill_completed(page, dagster_ui, output_dir):
    """Last: by now the backfill daemon has marked the backfill done (it ticks every 30 s)."""
    from playwright.sync_api import expect

    backfill = dagster_ui.dev.wait_for_backfill(dagster_ui.backfill_id, timeout=120)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["numPartitions"] == len(PARTITIONS), backfill
    assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"], backfill
    open_page(page, dagster_ui, f"/runs/b/{dagster_ui.backfill_id}")
    body = page.locator("body")
    expect(body).to_contain_text(re.compile(r"Status\s*Succeeded"))
    expect(body).to_contain_text(
        re.compile(rf"Partition selection\s*{PARTITIONS[0]}\.\.\.{PARTITIONS[-1]}")
    )
    expect(page.get_by_text("100% completed", exact=True)).to_have_count(len(ASSET_KEYS))
    screenshot(page, output_dir, "04-backfill")
