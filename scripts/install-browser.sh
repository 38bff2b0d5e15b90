#!/usr/bin/env bash
# Installs Debian's `chromium` package, the headless browser the UI test
# (carbon_assets_tests/test_ui_browser.py) drives through Playwright's executable_path.
# Idempotent: does nothing when /usr/bin/chromium (or $CARBON_CHROMIUM) already exists.
# Installs only when running as root (CI); otherwise says how and exits non-zero.
set -euo pipefail

CHROMIUM="${CARBON_CHROMIUM:-/usr/bin/chromium}"

if [[ -x "$CHROMIUM" ]]; then
    echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    cat >&2 <<MSG
chromium is not installed at $CHROMIUM and this script installs it only as root.
Install it with:
    sudo apt-get update && sudo apt-get install -y chromium
(The browser test is skipped while it is missing.)
MSG
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing and apt-get is not available: install Chromium at $CHROMIUM" >&2
    exit 1
fi

echo "Installing Debian's chromium package..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "installed at $CHROMIUM")"
