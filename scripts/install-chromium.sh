#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the browser test (tests/e2e/test_page.py).
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo) and apt.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-chromium: apt-get not found; install Chromium yourself (/usr/bin/chromium)" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-chromium: apt-get install chromium (first time: a minute or two)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
