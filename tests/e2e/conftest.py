"""Browser tests: Debian's Chromium driven by Playwright (never a browser Playwright downloads).

Chromium is installed with apt-get when missing and we may (root, apt-get present); otherwise the
tests are skipped saying why, except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _install_chromium() -> str:
    """What happened when trying to install Chromium with apt-get (empty when it worked)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get, so Chromium cannot be installed here"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium, installed on first use when possible."""
    problem = "" if os.path.exists(CHROMIUM) else _install_chromium()
    if not os.path.exists(CHROMIUM):
        reason = f"BROWSER TEST NOT RUN: {CHROMIUM} is missing ({problem or 'install failed'})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM
