#!/bin/sh
# Creates Temporal's two PostgreSQL databases if they are missing and brings
# their schemas up to the release of the temporal-sql-tool that runs it.
# Every step is idempotent, so compose runs it on each `up`: after a version
# bump of the Temporal images the schema is upgraded before the new server
# starts. `make test-cluster` runs the same script on fresh databases.
#
# POSIX sh: it runs in the temporalio/admin-tools image (busybox) and here.
# Environment:
#   SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD   read by temporal-sql-tool itself
#   SQL_DEFAULT_DB               database to connect to while creating the others (postgres)
#   TEMPORAL_DB_NAME             default store database (temporal)
#   TEMPORAL_VISIBILITY_DB_NAME  visibility database (temporal_visibility)
#   TEMPORAL_SCHEMA_DIR          directory holding temporal/versioned and
#                                visibility/versioned (the server module's
#                                schema/postgresql/v12); unset: the same files
#                                as embedded in temporal-sql-tool
set -eu
export SQL_PLUGIN=postgres12

for pair in "${TEMPORAL_DB_NAME:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB_NAME:-temporal_visibility}:visibility"; do
  db=${pair%%:*}
  schema=${pair#*:}
  if [ -n "${TEMPORAL_SCHEMA_DIR:-}" ]; then
    set -- --schema-dir "$TEMPORAL_SCHEMA_DIR/$schema/versioned"
  else
    set -- --schema-name "postgresql/v12/$schema"
  fi
  echo "temporal-schema: $db ($schema)"
  temporal-sql-tool --database "$db" create-database --defaultdb "${SQL_DEFAULT_DB:-postgres}"
  # Version 0.0 only creates the schema_version bookkeeping; on a database
  # that is already further along it does nothing.
  temporal-sql-tool --database "$db" setup-schema -v 0.0
  temporal-sql-tool --database "$db" update-schema "$@"
done
