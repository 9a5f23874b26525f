#!/usr/bin/env sh
# The whole test suite, from a fresh checkout: installs what the integration tests
# need (aiosmtpd, a real SMTP server, in a venv under target/), then runs cargo test.
# Quiet and idempotent; caches nothing outside target/.
set -eu
cd "$(dirname "$0")/.."
venv=target/test-venv
if ! "$venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"
fi
EMBUDO_TEST_PYTHON="$PWD/$venv/bin/python"
export EMBUDO_TEST_PYTHON
exec cargo test "$@"
