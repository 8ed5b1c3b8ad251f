#!/usr/bin/env bash
# Rebuilds ../assets/graphiql-*.min.{js,css} (and their .gz) and
# ../assets/third-party-licenses.txt from the npm packages pinned in package-lock.json
# (integrity-checked by `npm ci`). The same lock gives the same bytes. Needs Node 18+ and
# the npm registry; the server's own build needs neither, because the output is committed.
# To move to another version: change package.json, run
# `npm install --package-lock-only --ignore-scripts` here, then this script, and update
# `graphiql_version!` in ../assets.rs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
cp "$here"/package.json "$here"/package-lock.json "$here"/build.mjs "$here"/entry.js "$here"/entry.css "$here"/copyright.json "$work/"
# No install scripts: esbuild's binary comes from its platform package.
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -f -- "$here"/../assets/graphiql-*.min.*
node "$work/build.mjs" "$work" "$here/../assets"
# Precompressed copies for browsers that accept gzip (all of them): a third of the bytes.
# -n leaves out the name and time, so the same input gives the same file.
for f in "$here"/../assets/graphiql-*.min.js "$here"/../assets/graphiql-*.min.css; do
    gzip -9 -n -c "$f" >"$f.gz"
done
