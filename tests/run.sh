#!/usr/bin/env sh
# The whole test suite, from a fresh checkout, on each backend: installs what the
# integration tests need (aiosmtpd, a real SMTP server, under target/; PostgreSQL from
# Debian's package when it is missing), runs every test program on SQLite, then again
# on a throwaway PostgreSQL server it starts for the run (tests/support/postgres.sh;
# each funnel folder a database of its own, unit tests' stores include it) and stops
# at the end, also on a failure or Ctrl-C. --no-fail-fast: every failure shows, not
# only the first. Ends with a one-line summary of both runs. Quiet and idempotent;
# caches nothing outside target/. Headless Chromium (Debian's package) is installed
# for the dashboard's browser test; its screenshot is left at target/dashboard.png.
# Doc-tests are left out (--lib --bins --tests): the library has none, and rustdoc's runner hangs when the suite is run under a shifted
# clock (libfaketime), as it is to prove it clock-proof.
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

# Headless Chromium for the dashboard's browser test (Debian's package), installed
# quietly when missing; with it, the test must run (a missing browser fails it).
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
    if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get -qq update >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get -qq install -y chromium >/dev/null 2>&1 \
            || echo "run.sh: Chromium could not be installed; the dashboard's browser test is skipped" >&2
    fi
fi
if command -v chromium >/dev/null 2>&1; then
    EMBUDO_TEST_REQUIRE_CHROMIUM=1
    export EMBUDO_TEST_REQUIRE_CHROMIUM
fi

# The suite chooses its own databases: none from the caller's environment.
unset EMBUDO_TEST_POSTGRES EMBUDO_TEST_BACKEND EMBUDO_DATABASE_URL
. tests/support/postgres.sh
trap pg_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# One run of every test program, its output in target/test-output[-BACKEND].log; the
# exit code goes through a file: a pipeline's status is tee's, and `set -e` would leave
# the group before recording a failure.
run_suite() {
    log=$1
    shift
    { rc=0; cargo test --no-fail-fast --lib --bins --tests "$@" || rc=$?; echo "$rc" > "$log.rc"; } 2>&1 | tee "$log"
}

# One backend's totals and the names of its failures, from its log and exit code.
totals() {
    log=$1
    rc=$(cat "$log.rc" 2>/dev/null || echo 1)
    if [ "$rc" -ne 0 ] && ! grep -q "^test result:" "$log"; then
        echo "the tests did not build or run (cargo exited $rc)"
        return
    fi
    awk '
        /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
        /^test .* \.\.\. FAILED$/ { names = names " " $2 }
        END {
            if (f > 0) printf "%d passed, %d FAILED (%s ), %d ignored", p, f, names, g
            else printf "%d passed, 0 failed, %d ignored", p, g
        }' "$log"
}

sqlite_log=target/test-output.log
pg_log=target/test-output-postgres.log
rm -f "$sqlite_log" "$sqlite_log.rc" "$pg_log" "$pg_log.rc"
run_suite "$sqlite_log" "$@"
if pg_start; then
    EMBUDO_TEST_BACKEND=postgres
    export EMBUDO_TEST_BACKEND
    run_suite "$pg_log" "$@"
    pg_stop
    pg_summary=$(totals "$pg_log")
else
    echo 1 > "$pg_log.rc"
    pg_summary="NOT RUN: no PostgreSQL server could be started (see above)"
fi
# One line: the totals of every test program on each backend, and the failures.
echo "SUMMARY: sqlite: $(totals "$sqlite_log"); postgres: $pg_summary"
if [ "$(cat "$sqlite_log.rc")" -ne 0 ]; then exit "$(cat "$sqlite_log.rc")"; fi
exit "$(cat "$pg_log.rc")"
