"""/graph and /admin in a real browser: Debian's chromium, headless, driven by Selenium.

One server (the real `jacscale serve`) and one browser for the module. Screenshots
are saved for every page; with JACSCALE_UPDATE_SCREENSHOTS=1 they are copied into
docs/images/ (the ones the docs show).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from jacscale_core.testing import running_server
from tests.auth.helpers import FAST_ENV, PASSWORD, write_app

REPO = Path(__file__).resolve().parents[1]
SOURCE = (REPO / "examples" / "12_graph_explorer.jac").read_text()
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-pass-123"
USER_EMAIL, OTHER_EMAIL = "ada@example.com", "bob@example.com"
WAIT = 20.0

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (make test installs them)",
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("pages")
    app = write_app(directory, SOURCE)
    data = directory / "data"
    env = {**os.environ, **FAST_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "jacscale_core.cli", "admin", "create", str(app),
         "--email", ADMIN_EMAIL, "--data-dir", str(data), "--password-stdin"],
        input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with running_server(app, data, env=FAST_ENV) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            for email in (USER_EMAIL, OTHER_EMAIL):
                assert (
                    http.post(
                        "/user/register", json={"email": email, "password": PASSWORD}
                    ).status_code
                    == 201
                )
            token = http.post(
                "/user/login", json={"email": USER_EMAIL, "password": PASSWORD}
            ).json()["access_token"]
            seeded = http.post("/walker/seed", headers={"Authorization": f"Bearer {token}"})
            assert seeded.status_code == 200, seeded.text
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch drivers
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition: Any, message: str) -> Any:
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message)


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if os.environ.get("JACSCALE_UPDATE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "images" / f"{name}.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, target)


def fresh_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)


def sign_in(driver: WebDriver, email: str, password: str) -> None:
    driver.find_element(By.ID, "identity").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin-button").click()


def labels(driver: WebDriver) -> list[str]:
    return list(driver.execute_script("return jacGraph.cy.nodes().map(n => n.data('label'))"))


def node_id(driver: WebDriver, text: str) -> str:
    return str(driver.execute_script(
        "return jacGraph.cy.nodes().filter(n => n.data('label').includes(arguments[0]))[0].id()", text))  # fmt: skip


def test_graph_explorer(browser: WebDriver, base: str, tmp_path: Path) -> None:
    fresh_page(browser, base + "/graph")
    sign_in(browser, USER_EMAIL, PASSWORD)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
         "the explorer did not load")  # fmt: skip
    assert browser.find_element(By.ID, "who").text == USER_EMAIL
    # depth 1 from the root: the root and Ada
    assert sorted(labels(browser)) == ['Person(age=36, name="Ada")', "root"]
    assert browser.find_element(By.ID, "status").text == "2 nodes, 1 edges"

    # select Ada (a tap on the canvas node), inspect her fields, expand her neighbours
    ada = node_id(browser, "Ada")
    browser.execute_script("jacGraph.cy.$id(arguments[0]).emit('tap')", ada)
    fields = browser.find_element(By.ID, "node-fields").text
    assert '"name": "Ada"' in fields and '"age": 36' in fields
    browser.find_element(By.ID, "expand").click()
    wait(browser, lambda d: len(labels(d)) == 4, "expanding Ada did not add Bob and London")
    assert any("Bob" in t for t in labels(browser)) and any("London" in t for t in labels(browser))

    # spawn add_friend on Ada with the form built from the walker's schema
    Select(browser.find_element(By.ID, "walker")).select_by_value("add_friend")
    form = browser.find_element(By.ID, "walker-form")
    name_input = form.find_element(By.NAME, "name")
    assert name_input.get_attribute("required") == "true"
    assert form.find_element(By.NAME, "since").get_attribute("type") == "number"
    name_input.send_keys("Eve")
    browser.find_element(By.ID, "spawn").click()
    wait(
        browser,
        lambda d: any("Eve" in t for t in labels(d)),
        "the spawned walker's node did not appear",
    )
    assert '"Eve"' in browser.find_element(By.ID, "walker-result").text
    eve = node_id(browser, "Eve")
    edge = browser.execute_script(
        "return jacGraph.cy.edges().filter(e => e.target().id() === arguments[0])[0].data()", eve
    )
    assert edge["source"] == ada and edge["label"] == "Knows(since=2024)"
    screenshot(browser, tmp_path, "graph-explorer")

    # filters: only Person nodes, depth 3, from the root
    Select(browser.find_element(By.ID, "node-types")).select_by_value("Person")
    depth = browser.find_element(By.ID, "depth")
    depth.clear()
    depth.send_keys("3")
    browser.find_element(By.ID, "reload").click()
    wait(browser, lambda d: not any("London" in t for t in labels(d)) and any("Cy" in t for t in labels(d)),
         "the node type filter was not applied")  # fmt: skip


def test_sign_in_error_is_shown(browser: WebDriver, base: str, tmp_path: Path) -> None:
    fresh_page(browser, base + "/graph")
    sign_in(browser, USER_EMAIL, "wrong-password")
    wait(browser, lambda d: d.find_element(By.ID, "signin-error").text == "Invalid credentials",
         "no sign-in error shown")  # fmt: skip
    assert browser.find_element(By.ID, "explorer").get_attribute("hidden") == "true"
    screenshot(browser, tmp_path, "sign-in")


def test_admin_disables_a_user_who_then_cannot_log_in(
    browser: WebDriver, base: str, tmp_path: Path
) -> None:
    # a plain user is refused by the console
    fresh_page(browser, base + "/admin")
    sign_in(browser, OTHER_EMAIL, PASSWORD)
    wait(browser, lambda d: d.find_element(By.ID, "signin-error").text == "This account is not an admin.",
         "a non-admin was not refused")  # fmt: skip

    fresh_page(browser, base + "/admin")
    sign_in(browser, ADMIN_EMAIL, ADMIN_PASSWORD)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
         "the admin console did not load")  # fmt: skip
    rows = browser.find_elements(By.CSS_SELECTOR, "#users tbody tr")
    assert {r.get_attribute("data-email") for r in rows} == {ADMIN_EMAIL, USER_EMAIL, OTHER_EMAIL}
    screenshot(browser, tmp_path, "admin-users")

    row = browser.find_element(By.CSS_SELECTOR, f'#users tr[data-email="{OTHER_EMAIL}"]')
    row.find_element(By.CSS_SELECTOR, "button.toggle-disabled").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'#users tr[data-email="{OTHER_EMAIL}"] td.status').text == "disabled",
         "the user was not shown as disabled")  # fmt: skip

    refused = httpx.post(
        base + "/user/login", json={"email": OTHER_EMAIL, "password": PASSWORD}, timeout=30
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This account is disabled"

    # the other tabs
    browser.find_element(By.CSS_SELECTOR, 'nav.tabs button[data-tab="metrics"]').click()
    wait(
        browser,
        lambda d: "/walker/seed" in d.find_element(By.ID, "requests").text,
        "no request metrics",
    )
    assert "seed" in browser.find_element(By.ID, "walkers").text
    screenshot(browser, tmp_path, "admin-metrics")
    browser.find_element(By.CSS_SELECTOR, 'nav.tabs button[data-tab="jobs"]').click()
    wait(browser, lambda d: d.find_element(By.ID, "jobs-status").text == "0 jobs", "no jobs tab")
    browser.find_element(By.CSS_SELECTOR, 'nav.tabs button[data-tab="config"]').click()
    wait(
        browser,
        lambda d: "plugins.scale.auth" in d.find_element(By.ID, "config").text,
        "no configuration",
    )

    # and the disabled user cannot sign in to the explorer either
    fresh_page(browser, base + "/graph")
    sign_in(browser, OTHER_EMAIL, PASSWORD)
    wait(browser, lambda d: d.find_element(By.ID, "signin-error").text == "This account is disabled",
         "the disabled user was not refused")  # fmt: skip


def test_ten_thousand_nodes_stay_usable(browser: WebDriver, base: str, tmp_path: Path) -> None:
    email = "many@example.com"
    with httpx.Client(base_url=base, timeout=120) as http:
        http.post("/user/register", json={"email": email, "password": PASSWORD})
        token = http.post("/user/login", json={"email": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        made = http.post("/walker/add_people", json={"count": 9_999},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert made.status_code == 200, made.text
    fresh_page(browser, base + "/graph")
    sign_in(browser, email, PASSWORD)
    # the first page of a huge answer is drawn; the rest waits for "Draw more"
    wait(browser, lambda d: d.find_element(By.ID, "status").text
         == "1000 nodes, 999 edges (9000 more not drawn yet)", "the first 1,000 were not drawn")  # fmt: skip
    browser.find_element(By.ID, "more").click()
    wait(browser, lambda d: d.find_element(By.ID, "status").text
         == "2000 nodes, 1999 edges (8000 more not drawn yet)", "Draw more did not draw more")  # fmt: skip
    # still interactive: select a drawn node and read its fields
    some = node_id(browser, "p1234")
    browser.execute_script("jacGraph.cy.$id(arguments[0]).emit('tap')", some)
    assert '"name": "p1234"' in browser.find_element(By.ID, "node-fields").text
    screenshot(browser, tmp_path, "graph-10k")
