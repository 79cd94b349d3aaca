#!/usr/bin/env bash
# System packages the integration tests use: headless Chromium (UI checks), g++ (C++ answers) and
# libseccomp (the sandbox's syscall filter; the sandbox refuses to start without it).
# Installs only what is missing, and only where apt-get and root are available; tests that need a
# missing tool skip with an install hint instead.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v g++ >/dev/null || missing+=(g++)
[ -n "$(ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2')" ] || missing+=(libseccomp2)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} missing and cannot be installed here (needs root + apt-get); those tests will skip"
fi
