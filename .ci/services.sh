# The services the tests talk to, for `.ci/run` and for a developer's shell:
#
#   source .ci/services.sh && cargo test --workspace --locked
#
# PostgreSQL must already run (OTAGO_TEST_DATABASE_URL, default the local `test` database with
# trust auth); this drops the schemas earlier test runs left there, builds s3s-fs once (an
# S3-compatible server from crates.io) and starts it on loopback, and exports what the tests
# read. The S3 server stops when the shell that sourced this exits.

export OTAGO_TEST_DATABASE_URL="${OTAGO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
# Each test server on PostgreSQL makes a schema `otago_test_<random>`; earlier runs' go first.
PGOPTIONS="-c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 "$OTAGO_TEST_DATABASE_URL" -c "DO \$\$ DECLARE s text; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'otago\_test\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
    COMMIT; -- one schema a transaction: all at once would outgrow the lock table
  END LOOP; END \$\$;"

# A real S3-compatible server for the bucket store's tests: s3s-fs from crates.io (no Debian
# package serves S3), built once into a cache folder that outlives the run. Two listeners over
# one folder: one that checks signatures (the server's), one anonymous (the bucket's public
# endpoint, as a CDN or an R2 custom domain reads it).
tools="${OTAGO_TOOLS_DIR:-$HOME/.cache/otago-ci-tools}"
if [[ ! -x "$tools/bin/s3s-fs" ]]; then
  cargo install s3s-fs@0.14.1 --locked --features binary --root "$tools" --quiet
fi
s3_root=$(mktemp -d)
mkdir -p "$s3_root/otago-test"
s3_port=$((20000 + RANDOM % 20000))
"$tools/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" --access-key otago-ci \
  --secret-key otago-ci-secret "$s3_root" >"$s3_root.signed.log" 2>&1 &
s3_signed=$!
"$tools/bin/s3s-fs" --host 127.0.0.1 --port $((s3_port + 1)) "$s3_root" >"$s3_root.public.log" 2>&1 &
s3_public=$!
# Stops the S3 server and removes its folder (run at exit; a caller's own trap must call it).
otago_services_stop() {
  kill "$s3_signed" "$s3_public" 2>/dev/null
  rm -rf "$s3_root" "$s3_root".*.log
}
trap otago_services_stop EXIT
export OTAGO_TEST_S3_URL="s3://otago-test?endpoint=http://127.0.0.1:$s3_port&region=us-east-1&access_key_id=otago-ci&secret_access_key=otago-ci-secret"
export OTAGO_TEST_S3_PUBLIC_URL="http://127.0.0.1:$((s3_port + 1))/otago-test"
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$((s3_port + 1))/otago-test/" && break
  sleep 0.1
done
echo "ok: s3s-fs on 127.0.0.1:$s3_port (signed) and :$((s3_port + 1)) (anonymous)"

