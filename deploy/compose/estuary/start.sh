#!/bin/sh
# Estuary's entry point in docker-compose.yml. Compose profiles start sinks but cannot change
# another service's config, so the profiles named in COMPOSE_PROFILES pick the outputs here:
# estuary.yaml ends with its `outputs:` list, and each outputs/<profile>.yaml holds more
# items of that list. test/deploy/compose.test.ts runs this script with `check`.
set -eu
here=$(dirname "$0")
config=${ESTUARY_GENERATED_CONFIG:-/tmp/estuary.yaml}
cat "$here/estuary.yaml" >"$config"
for profile in $(echo "${COMPOSE_PROFILES:-}" | tr ',' ' '); do
  if [ -f "$here/outputs/$profile.yaml" ]; then cat "$here/outputs/$profile.yaml" >>"$config"; fi
done
[ $# -gt 0 ] || set -- run
# The image's ENTRYPOINT flags (Dockerfile); the test checks that they agree.
exec node --max-semi-space-size=4 "${ESTUARY_BIN:-/app/bin/estuary.js}" "$@" -c "$config"
