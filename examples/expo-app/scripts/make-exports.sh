#!/usr/bin/env bash
# Makes exports/v1 and exports/v2: two consecutive updates of this app, both platforms, made
# with `npx expo export --dump-assetmap`. v2 differs from v1 in one line of App.js
# (BUILD_LABEL 'example build v1' -> 'example build v2'). Also rewrites expo-config.public.json.
#
#   examples/expo-app/scripts/make-exports.sh        # needs node 20 and the npm registry
#
# Works in a scratch copy of the app (node_modules/ never lands in the repository), installs
# exactly package-lock.json (`npm ci`), and runs every command with CI=1 EXPO_NO_TELEMETRY=1.
# The `.env*` files are part of the copy, so the export (mode production) inlines
# EXPO_PUBLIC_API_URL from .env.production into both bundles.
#
# Deterministic where Expo allows: metadata.json, assetmap.json and the asset files come out the
# same on every run; the Hermes bytecode bundles (.hbc) do not (other bytes, sometimes other
# file names). After a re-run, update the golden values (GOLDEN.md and the tests naming them).
set -euo pipefail
APP=$(cd "$(dirname "$0")/.." && pwd)
export CI=1 EXPO_NO_TELEMETRY=1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROJECT=$WORK/project
mkdir "$PROJECT"
# The app's sources and config, without previous outputs or installed packages.
tar -C "$APP" --exclude=./node_modules --exclude=./exports --exclude=./scripts --exclude=./.expo \
  -cf - . | tar -C "$PROJECT" -xf -
cd "$PROJECT"

npm ci --no-audit --no-fund
npx expo config --json --type public >"$APP/expo-config.public.json"

export_to() {
  npx expo export --platform all --output-dir "$WORK/$1" --dump-assetmap
  # --dump-assetmap writes absolute paths of the build folder; start them at /project instead,
  # so they name no machine. Nothing else in the export is touched.
  sed -i "s|\"$PROJECT/|\"/project/|g" "$WORK/$1/assetmap.json"
  if grep -q "$WORK" "$WORK/$1/assetmap.json"; then
    echo "assetmap.json still names the build folder $WORK" >&2
    exit 1
  fi
}

grep -q "^const BUILD_LABEL = 'example build v1';$" App.js
export_to v1
sed -i "s/^const BUILD_LABEL = 'example build v1';$/const BUILD_LABEL = 'example build v2';/" App.js
changed=$(diff "$APP/App.js" App.js | grep -c '^[<>]' || true)
if [ "$changed" != 2 ]; then
  echo "v2 must differ from v1 in exactly one line of App.js" >&2
  exit 1
fi
export_to v2

rm -rf "$APP/exports/v1" "$APP/exports/v2"
mkdir -p "$APP/exports"
cp -R "$WORK/v1" "$APP/exports/v1"
cp -R "$WORK/v2" "$APP/exports/v2"
echo "wrote $APP/exports/v1 and $APP/exports/v2"
find "$APP/exports" -type f | sort
