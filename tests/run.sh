#!/usr/bin/env sh
# The whole test suite, from a fresh checkout: installs what the integration tests
# need (aiosmtpd, a real SMTP server, under target/), then runs every test program
# (--no-fail-fast: every failure shows, not only the first) and ends with a one-line
# summary. Quiet and idempotent; caches nothing outside target/. Doc-tests are left out
# (--lib --bins --tests): the library has none, and rustdoc's runner hangs when the
# suite is run under a shifted clock (libfaketime), as it is to prove it clock-proof.
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

log=target/test-output.log
rc_file=target/test-rc
# The exit code goes through a file: a pipeline's status is tee's, and `set -e` would
# leave the group before recording a failure.
{ rc=0; cargo test --no-fail-fast --lib --bins --tests "$@" || rc=$?; echo "$rc" > "$rc_file"; } 2>&1 | tee "$log"
rc=$(cat "$rc_file")
# One line: the totals of every test program, and the names of the failures.
awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
    /^test .* \.\.\. FAILED$/ { names = names " " $2 }
    END {
        if (f > 0) printf "SUMMARY: %d passed, %d FAILED (%s ), %d ignored\n", p, f, names, g
        else printf "SUMMARY: %d passed, 0 failed, %d ignored\n", p, g
    }' "$log"
if [ "$rc" -ne 0 ] && ! grep -q "^test result:" "$log"; then
    echo "SUMMARY: the tests did not build or run (cargo exited $rc); see above"
fi
exit "$rc"
