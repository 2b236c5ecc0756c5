"""Headless Chromium (Debian's chromium + chromium-driver; `make test` installs them) driven by selenium,
with a fresh profile and nothing that reaches the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1100,1400",
)


def chromium(profile: Path):
    """A selenium driver of headless Chromium with its profile in ``profile``; skips when not installed."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("chromium and chromium-driver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


# What the page shows, read in the browser: table cells, each player's state, each picture's decoded size.
RENDERED = """
const audio = [...document.querySelectorAll('audio')];
return {
  tables: [...document.querySelectorAll('table')].map(t => t.rows.length),
  cells: [...document.querySelectorAll('table.songs td')].map(td => td.innerText),
  players: audio.map(a => ({ready: a.readyState, duration: a.duration, error: a.error && a.error.code, width: a.getBoundingClientRect().width})),
  images: [...document.querySelectorAll('img')].map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width})),
  lyrics: [...document.querySelectorAll('pre.lyrics')].map(p => p.innerText),
};
"""


def rendered(driver, page: Path, players: int) -> dict:
    """Open ``page`` and wait until ``players`` audio elements have loaded their metadata (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    done = "return [...document.querySelectorAll('audio')].filter(a => a.readyState >= 1 || a.error).length"
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(done) >= players)
    return driver.execute_script(RENDERED)
