/* Unit tests for lib/db.c: migrations applied in order and tracked with
 * user_version, an older database migrated with its rows kept, a newer one
 * refused with a clear message, pragmas, nested transactions, and a full
 * disk's reason kept through the rollback. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "db.h"

static char dir[] = "/tmp/dfew-test-db-XXXXXX";

static long long scalar(struct db *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *text(struct db *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static void test_migrations_numbered(void)
{
    CHECK(db_migration_count >= 2);
    for (int i = 0; i < db_migration_count; i++)
        CHECK_EQ_INT(db_migrations[i].version, i + 1);
}

static void test_fresh_and_pragmas(void)
{
    char path[256], err[512], buf[64];
    snprintf(path, sizeof path, "%s/fresh.db", dir);
    struct db *db;
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    int v = 0;
    CHECK_EQ_INT(db_user_version(db, &v), 0);
    CHECK_EQ_INT(v, db_migration_count);
    CHECK_EQ_STR(text(db, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    CHECK_EQ_INT(scalar(db, "PRAGMA foreign_keys"), 1);
    CHECK_EQ_INT(scalar(db, "PRAGMA busy_timeout"), 1000);
    /* Foreign keys are enforced. */
    CHECK(sqlite3_exec(db->h, "INSERT INTO clips (movie_id, start_s, end_s, created_at, updated_at) "
                              "VALUES (999, 0, 1, 0, 0)", NULL, NULL, NULL) != SQLITE_OK);
    /* Reopening does not migrate again. */
    db_close(db);
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    CHECK_EQ_INT(db_user_version(db, &v), 0);
    CHECK_EQ_INT(v, db_migration_count);
    db_close(db);
}

static void test_older_database_migrates(void)
{
    char path[256], err[512], buf[256];
    snprintf(path, sizeof path, "%s/old.db", dir);
    struct db *db;
    CHECK_EQ_INT(db_open(path, 1, 1000, &db, err, sizeof err), 0);
    int v = 0;
    db_user_version(db, &v);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"), 0);
    CHECK_EQ_INT(db_exec(db, "INSERT INTO movies (sha256, source, path, size_bytes, added_at, width, height) VALUES "
                             "('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'old.mp4', '/x/old.mp4', "
                             "10, 1, 640, 360);"
                             "INSERT INTO jobs (kind, movie_id, state, created_at, updated_at) VALUES ('probe', 1, "
                             "'done', 1, 1);"),
                 0);
    db_close(db);
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    db_user_version(db, &v);
    CHECK_EQ_INT(v, db_migration_count);
    CHECK(scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'view'") >= 4);
    CHECK_EQ_STR(text(db, "SELECT source || ' ' || width || 'x' || height || ' ' || probe_state FROM movie_status",
                      buf, sizeof buf),
                 "old.mp4 640x360 done");
    CHECK_EQ_INT(scalar(db, "SELECT jobs FROM queue_summary WHERE kind = 'probe' AND state = 'done'"), 1);
    db_close(db);
}

static void test_newer_database_refused(void)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/new.db", dir);
    struct db *db;
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", db_migration_count + 3);
    CHECK_EQ_INT(db_exec(db, sql), 0);
    db_close(db);
    err[0] = '\0';
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), -EPROTONOSUPPORT);
    CHECK(strstr(err, "newer dfew") != NULL);
    CHECK(strstr(err, "will not change it") != NULL);
}

static void test_not_a_database(void)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/text.db", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not an sqlite database, just some text that is long enough to have a header\n", f);
    fclose(f);
    struct db *db;
    err[0] = '\0';
    CHECK(db_open(path, -1, 1000, &db, err, sizeof err) < 0);
    CHECK(strstr(err, "not an SQLite") != NULL);
}

static void test_nested_transactions(void)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/tx.db", dir);
    struct db *db;
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    CHECK_EQ_INT(db_begin(db), 0);
    CHECK_EQ_INT(db_exec(db, "INSERT INTO jobs (kind, created_at, updated_at) VALUES ('noop', 0, 0)"), 0);
    CHECK_EQ_INT(db_begin(db), 0);
    CHECK_EQ_INT(db_exec(db, "INSERT INTO jobs (kind, created_at, updated_at) VALUES ('noop', 0, 0)"), 0);
    db_rollback(db); /* undoes only the inner insert */
    CHECK_EQ_INT(db_commit(db), 0);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM jobs"), 1);
    CHECK_EQ_INT(db->tx_depth, 0);
    CHECK_EQ_INT(db_commit(db), -EINVAL);
    db_close(db);
}

/* A full disk (here: the database at its max_page_count): SQLite rolls the
 * whole transaction back itself, and db_rollback must not hide why (a
 * ROLLBACK of its own would fail with "no transaction is active", and dfewd
 * logged that instead of "database or disk is full"). */
static void test_full_disk_reason_survives_rollback(void)
{
    char path[256], err[512], sql[64];
    snprintf(path, sizeof path, "%s/full.db", dir);
    struct db *db;
    CHECK_EQ_INT(db_open(path, -1, 1000, &db, err, sizeof err), 0);
    CHECK_EQ_INT(db_exec(db, "CREATE TABLE filler (b BLOB)"), 0);
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", scalar(db, "PRAGMA page_count"));
    CHECK_EQ_INT(db_exec(db, sql), 0);
    for (int nested = 0; nested <= 1; nested++) {
        CHECK_EQ_INT(db_begin(db), 0);
        if (nested)
            CHECK_EQ_INT(db_begin(db), 0);
        CHECK_EQ_INT(db_exec(db, "INSERT INTO filler VALUES (zeroblob(1000000))"), -ENOSPC);
        db_rollback(db);
        if (nested)
            db_rollback(db);
        CHECK(strstr(db_errmsg(db), "full") != NULL);
        CHECK_EQ_INT(db->tx_depth, 0);
    }
    /* space again: the connection works as before */
    CHECK_EQ_INT(db_exec(db, "PRAGMA max_page_count = 1000000"), 0);
    CHECK_EQ_INT(db_begin(db), 0);
    CHECK_EQ_INT(db_exec(db, "INSERT INTO filler VALUES (zeroblob(1000000))"), 0);
    CHECK_EQ_INT(db_commit(db), 0);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM filler"), 1);
    db_close(db);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_migrations_numbered);
    RUN(test_fresh_and_pragmas);
    RUN(test_older_database_migrates);
    RUN(test_newer_database_refused);
    RUN(test_not_a_database);
    RUN(test_nested_transactions);
    RUN(test_full_disk_reason_survives_rollback);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_report();
}
