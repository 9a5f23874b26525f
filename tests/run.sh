#!/usr/bin/env sh
# The whole test suite, from a fresh checkout: installs what the integration tests
# need (aiosmtpd, a real SMTP server, under target/), then runs cargo test.
# Quiet and idempotent; caches nothing outside target/.
set -eu
cd "$(dirname "$0")/.."
mkdir -p target
venv=target/test-venv
deps=target/test-pydeps
if "$venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
    EMBUDO_TEST_PYTHON="$PWD/$venv/bin/python"
elif PYTHONPATH="$PWD/$deps" python3 -c "import aiosmtpd" 2>/dev/null; then
    EMBUDO_TEST_PYTHON=python3
    PYTHONPATH="$PWD/$deps"; export PYTHONPATH
elif python3 -m venv "$venv" >/dev/null 2>&1 \
    && "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"; then
    EMBUDO_TEST_PYTHON="$PWD/$venv/bin/python"
else
    # No venv module (a bare Debian python3): install into a folder instead.
    rm -rf "$venv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$deps" "aiosmtpd==1.4.6"
    EMBUDO_TEST_PYTHON=python3
    PYTHONPATH="$PWD/$deps"; export PYTHONPATH
fi
export EMBUDO_TEST_PYTHON
exec cargo test "$@"
