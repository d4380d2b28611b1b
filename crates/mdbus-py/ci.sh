#!/usr/bin/env bash
# CI of the Python package `mdbus` (crates/mdbus-py): rustfmt, clippy and
# rustdoc of the extension crate (outside the root workspace), then a venv
# under target/, the package installed into it, and pytest. The tests run
# the `mdbus` binary (target/release/mdbus, built here if missing).
set -euo pipefail
crate="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$crate/../.." && pwd)"
cd "$root"
manifest="$crate/Cargo.toml"
# The crate's build artefacts live under the root target/ (one place to
# clean, reused by the next run).
export CARGO_TARGET_DIR="$root/target/mdbus-py"

step() { printf '\n== %s\n' "$*"; }

step "mdbus-py: cargo fmt --check, clippy -D warnings, rustdoc -D warnings"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --manifest-path "$manifest" --check
else
    echo "SKIP: rustfmt"
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --manifest-path "$manifest" --all-targets -- -D warnings
else
    echo "SKIP: clippy"
fi
RUSTDOCFLAGS="-D warnings" cargo doc --manifest-path "$manifest" --no-deps

step "mdbus-py: the mdbus binary the tests run"
cargo build --release --bin mdbus --manifest-path "$root/Cargo.toml" --target-dir "$root/target"

step "mdbus-py: venv, packages from the registry by name, the package, pytest"
venv="$root/target/py-venv"
if [[ ! -x "$venv/bin/python" ]] && ! python3 -m venv "$venv"; then
    # Debian's python3 makes venvs only with python3-venv (ensurepip).
    rm -rf "$venv"
    if [[ -n "${CI:-}" ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    else
        echo "FAIL: python3 -m venv (install python3-venv)"
        exit 1
    fi
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q maturin numpy pandas pyarrow polars matplotlib pytest
# No build isolation: the venv's maturin builds the wheel, in
# $CARGO_TARGET_DIR (kept between runs).
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$crate"
MDBUS_BIN="$root/target/release/mdbus" "$venv/bin/python" -m pytest -q "$crate/tests"

step "mdbus-py: examples/python/research.py on a 2 s synthetic WAL"
example_dir="$(mktemp -d)"
trap 'rm -rf "$example_dir"' EXIT
"$root/target/release/mdbus" publish --feed "py-research-$$" --wal "$example_dir" --synthetic --rate 20000 \
    --duration 2 --board-dir "$example_dir"
"$venv/bin/python" "$root/examples/python/research.py" --wal "$example_dir" --feed "py-research-$$" \
    --out "$root/target/python-research.png"
ls -l "$root/target/python-research.png"
rm -rf "$example_dir"
trap - EXIT
