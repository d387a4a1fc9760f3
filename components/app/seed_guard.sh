#!/bin/sh
# Decides whether the bookstore's seed may run: only on a database that holds no book yet.
#
# The shopapi's seed begins with `Book.destroy_all`, so seeding a database that has books
# deletes them. This check runs before `rails db:migrate db:seed`, in an init container on the
# MariaDB image (the shopapi image has no documented mysql client), and writes its decision,
# `seed` or `keep`, to $SEED_DECISION_FILE for the schema container to read. When it cannot
# tell (the database is unreachable, the login fails), it writes nothing and exits non-zero:
# the pod is retried, and nothing is seeded on a guess.
#
# Environment: DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD_FILE (the app user's password,
# kept off the command line), SEED_DECISION_FILE.
set -eu

: "${DB_HOST:?}" "${DB_PORT:?}" "${DB_NAME:?}" "${DB_USER:?}"
: "${DB_PASSWORD_FILE:?}" "${SEED_DECISION_FILE:?}"

rm -f "$SEED_DECISION_FILE"
MYSQL_PWD=$(cat "$DB_PASSWORD_FILE")
export MYSQL_PWD

query() {
  mariadb --host="$DB_HOST" --port="$DB_PORT" --user="$DB_USER" --database="$DB_NAME" \
    --batch --skip-column-names --execute="$1"
}

books_table=$(query "SELECT COUNT(*) FROM information_schema.TABLES
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'books'")
case "$books_table" in
  0) decision=seed ;;
  1)
    any_book=$(query "SELECT EXISTS (SELECT 1 FROM books)")
    case "$any_book" in
      0) decision=seed ;;
      1) decision=keep ;;
      *) echo "seed guard: unexpected answer '$any_book' counting books" >&2; exit 1 ;;
    esac
    ;;
  *) echo "seed guard: unexpected answer '$books_table' looking for the books table" >&2; exit 1 ;;
esac

printf '%s\n' "$decision" > "$SEED_DECISION_FILE"
echo "seed guard: $decision (the database has $([ "$decision" = keep ] && echo books || echo no book))"
