#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available at /usr/bin/chromium for the browser tests.
#
#   deploy/local/browser.sh     # prints the browser's path
#
# Uses the browser when it is there; otherwise installs the `chromium` package with apt (root only).
# The tests drive it with Playwright's Python client, which never downloads a browser of its own.
# Safe to run repeatedly.
set -euo pipefail

BROWSER="${LOYALTY_CHROMIUM:-/usr/bin/chromium}"

die() { echo "browser.sh: $*" >&2; exit 1; }

if [[ ! -x "$BROWSER" ]]; then
    [[ "$(id -u)" == 0 ]] || die "$BROWSER is missing; install Debian's chromium package (apt-get install chromium)"
    command -v apt-get >/dev/null 2>&1 || die "$BROWSER is missing and apt-get is not available"
    echo "browser.sh: installing chromium from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends chromium >&2 \
        || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends chromium >&2; }
    [[ -x "$BROWSER" ]] || die "chromium was installed but $BROWSER is not there"
fi
echo "$BROWSER"
