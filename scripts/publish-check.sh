#!/usr/bin/env bash
# `cargo publish --dry-run` for every publishable crate of the workspace, in dependency
# order (warren-broker, warren-macros, warren-rpc, warren-cli): each is packaged as
# crates.io would receive it (path dependencies rewritten to their versions) and, unless
# PUBLISH_CHECK_VERIFY=0, built from that package alone, so a missing file, a path
# dependency without a version or bad metadata fails here rather than at release.
#
# None of the crates needs to be on crates.io first: with several workspace members at
# once (cargo >= 1.90), cargo resolves their dependencies on each other through a local
# overlay of the packages it just made. Everything else resolves from the crates.io
# index as usual, so the index must be reachable (or its cache warm, with
# CARGO_NET_OFFLINE=true). Crates marked `publish = false` are left out: warren-broker's
# fuzz crate (not a workspace member) and warren-test-support (a member, skipped by
# `cargo publish --workspace`; the other crates' dev-dependency on it is a path without
# a version, which cargo strips from their packages).
#
#   PUBLISH_CHECK_VERIFY=0   package only (`--no-verify`): seconds instead of a few
#                            minutes of debug builds
set -euo pipefail
cd "$(dirname "$0")/.."

verify=()
if [ "${PUBLISH_CHECK_VERIFY:-1}" = 0 ]; then
  verify=(--no-verify)
fi

# The publishable members and their versions, as cargo sees them (publish = false ones
# are absent): one "NAME VERSION" line each.
members="$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys
for p in json.load(sys.stdin)["packages"]:
    if p.get("publish") != []:
        print(p["name"], p["version"])')"
crates="$(echo "$members" | cut -d' ' -f1)"
# cargo unpacks each package it verifies under $CARGO_HOME/registry/src/-<hash>/NAME-VERSION
# (the hash names the local overlay, so it is the same for every run from this checkout
# path) and, when that directory is already there, builds the old copy instead of the new
# tarball. A run from an earlier commit at the same version then fails the build of code
# that is no longer in the tree, so drop those unpacked copies of the workspace's own
# crates first. Only overlay directories (-<hash>) are touched, never crates.io's.
while read -r name version; do
  rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/"$name-$version"
done <<<"$members"
echo "--- cargo publish --dry-run: $(echo "$crates" | tr '\n' ' ')"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# --allow-dirty: CI and local runs check the tree as it is, committed or not.
cargo publish --dry-run --workspace --allow-dirty --locked "${verify[@]}" 2>&1 | tee "$log"
for crate in $crates; do
  grep -q "Packaging $crate v" "$log" || { echo "publish-check: $crate was not packaged" >&2; exit 1; }
done
echo "publish-check: $(echo "$crates" | wc -l) crates packaged${verify[*]:+ (not verified: PUBLISH_CHECK_VERIFY=0)}"
