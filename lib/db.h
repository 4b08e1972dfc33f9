/* Opening the dfew database: WAL mode, foreign keys, busy timeout, and the
 * numbered migrations from schema/ tracked with PRAGMA user_version. A newer
 * binary migrates an older database; an older binary refuses a newer one.
 * Also: write transactions (BEGIN IMMEDIATE) and a small prepared-statement
 * cache. What the tables mean lives in schema/README.md, not here. */
#ifndef DFEW_DB_H
#define DFEW_DB_H

#include <sqlite3.h>
#include <stddef.h>

struct db_migration {
    int version;
    const char *name;
    const char *sql;
};
extern const struct db_migration db_migrations[];
extern const int db_migration_count;

#define DB_STMT_CACHE 64

struct db {
    sqlite3 *h;
    int busy_ms; /* the busy timeout db_open set (db_busy_timeout restores it) */
    int tx_depth;
    struct {
        const char *sql; /* identity: the caller's string literal */
        sqlite3_stmt *st;
    } cache[DB_STMT_CACHE];
    int ncache;
};

/* Opens (creating) path and migrates it to the newest schema this binary
 * knows, or to max_version when >= 0 (tests build older databases that way).
 * busy_ms: how long to wait for another writer. */
int db_open(const char *path, int max_version, int busy_ms, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);
/* How long the next statements wait for another writer; ms < 0: back to
 * db_open's. dfewd's loop waits briefly where it can try again later. */
void db_busy_timeout(struct db *db, int ms);
int db_user_version(struct db *db, int *v);

/* A cached prepared statement, reset and unbound, for a string literal. NULL on
 * error (logged). Do not hold two uses of the same literal at once. */
sqlite3_stmt *db_prepare(struct db *db, const char *sql);
/* Steps a statement that returns no rows and resets it. 0 or negative errno. */
int db_step_done(struct db *db, sqlite3_stmt *st);
int db_exec(struct db *db, const char *sql);

/* Nested write transactions: the outermost is BEGIN IMMEDIATE, inner ones are
 * savepoints. rollback undoes the innermost level. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Maps an SQLite result code to a negative errno. */
int db_errno(int sqlite_rc);
const char *db_errmsg(struct db *db);

#endif
