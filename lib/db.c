/* Opening, migrating and transacting on the dfew SQLite database (see db.h). */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfew_build.h"
#include "log.h"
#include "util.h"

int db_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return -EILSEQ;
    case SQLITE_FULL:
        return -ENOSPC;
    default:
        return -EIO;
    }
}

const char *db_errmsg(struct db *db) { return sqlite3_errmsg(db->h); }

int db_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_debug(0, "sql failed: %s: %s", msg ? msg : sqlite3_errstr(rc), sql);
        sqlite3_free(msg);
        return db_errno(rc);
    }
    return 0;
}

int db_user_version(struct db *db, int *v)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

static int migrate(struct db *db, const char *path, int target, char *err, size_t errlen)
{
    int v = 0, rc = db_user_version(db, &v);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read the schema version: %s%s", path, db_errmsg(db),
                 rc == -EILSEQ ? " (is this a dfew database? it is not an SQLite file)" : "");
        return rc;
    }
    if (v > db_migration_count) {
        snprintf(err, errlen,
                 "%s has schema version %d, but this dfew (%s) knows versions up to %d: the database was "
                 "written by a newer dfew. Use the newer dfew binaries with it, or point --home at another "
                 "directory; this binary will not change it.",
                 path, v, DFEW_VERSION, db_migration_count);
        return -EPROTONOSUPPORT;
    }
    while (v < target) {
        rc = db_begin(db);
        if (rc) {
            snprintf(err, errlen, "%s: cannot lock the database to migrate it: %s", path, db_errmsg(db));
            return rc;
        }
        /* Another process may have migrated while we waited for the lock. */
        rc = db_user_version(db, &v);
        if (rc || v >= target) {
            db_rollback(db);
            break;
        }
        const struct db_migration *m = &db_migrations[v];
        char *msg = NULL;
        int src = sqlite3_exec(db->h, m->sql, NULL, NULL, &msg);
        if (src == SQLITE_OK) {
            char pragma[64];
            snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
            src = sqlite3_exec(db->h, pragma, NULL, NULL, &msg);
        }
        if (src != SQLITE_OK) {
            snprintf(err, errlen, "%s: migration %s failed: %s", path, m->name, msg ? msg : sqlite3_errstr(src));
            sqlite3_free(msg);
            db_rollback(db);
            return db_errno(src);
        }
        rc = db_commit(db);
        if (rc) {
            snprintf(err, errlen, "%s: cannot commit migration %s: %s", path, m->name, db_errmsg(db));
            return rc;
        }
        v = m->version;
    }
    return rc;
}

static int set_wal(struct db *db)
{
    /* Changing the journal mode needs a moment of exclusive access; many
     * processes opening a fresh database at once may have to wait for it. */
    for (int tries = 0; tries < 200; tries++) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc != SQLITE_OK)
            return db_errno(rc);
        rc = sqlite3_step(st);
        int ok = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        if (ok)
            return 0;
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_ROW)
            return db_errno(rc);
        usleep(10000);
    }
    return -EBUSY;
}

int db_open(const char *path, int max_version, int busy_ms, struct db **out, char *err, size_t errlen)
{
    struct db *db = xcalloc(1, sizeof *db);
    if (errlen)
        err[0] = '\0';
    /* A new database is created 0600 by us, not 0644 by SQLite: the queue,
     * the labels and the paths are the owner's. SQLite gives its -wal and
     * -shm files the database's mode. An existing file keeps its mode. */
    if (strcmp(path, ":memory:") && path[0]) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    int rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path, db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        rc = db_errno(rc);
        goto fail;
    }
    db->busy_ms = busy_ms;
    sqlite3_busy_timeout(db->h, busy_ms);
    sqlite3_extended_result_codes(db->h, 0);
    /* Refuse a newer schema before changing anything in the file. */
    int v = 0;
    rc = db_user_version(db, &v);
    if (!rc && v > db_migration_count)
        rc = migrate(db, path, db_migration_count, err, errlen);
    if (rc) {
        if (!*err)
            snprintf(err, errlen, "cannot read %s: %s%s", path, db_errmsg(db),
                     rc == -EILSEQ ? " (the file is not an SQLite database)" : "");
        goto fail;
    }
    rc = set_wal(db);
    if (rc) {
        snprintf(err, errlen, "cannot switch %s to WAL mode: %s%s", path, db_errmsg(db),
                 rc == -EILSEQ ? " (the file is not an SQLite database)" : "");
        goto fail;
    }
    rc = db_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;");
    if (rc) {
        snprintf(err, errlen, "cannot configure %s: %s", path, db_errmsg(db));
        goto fail;
    }
    rc = migrate(db, path, max_version >= 0 && max_version < db_migration_count ? max_version : db_migration_count,
                 err, errlen);
    if (rc)
        goto fail;
    *out = db;
    return 0;
fail:
    db_close(db);
    return rc;
}

void db_busy_timeout(struct db *db, int ms)
{
    sqlite3_busy_timeout(db->h, ms < 0 ? db->busy_ms : ms);
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (int i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].st);
    if (db->h)
        sqlite3_close(db->h);
    free(db);
}

sqlite3_stmt *db_prepare(struct db *db, const char *sql)
{
    for (int i = 0; i < db->ncache; i++) {
        if (db->cache[i].sql == sql) {
            sqlite3_reset(db->cache[i].st);
            sqlite3_clear_bindings(db->cache[i].st);
            return db->cache[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        log_error(0, "cannot prepare SQL (%s): %s", sqlite3_errmsg(db->h), sql);
        return NULL;
    }
    if (db->ncache < DB_STMT_CACHE) {
        db->cache[db->ncache].sql = sql;
        db->cache[db->ncache].st = st;
        db->ncache++;
    } else {
        log_warn(0, "statement cache full; this SQL will leak a statement: %s", sql);
    }
    return st;
}

int db_step_done(struct db *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    log_debug(0, "sql step failed: %s", sqlite3_errmsg(db->h));
    return db_errno(rc);
}

int db_begin(struct db *db)
{
    int rc = db_exec(db, db->tx_depth ? "SAVEPOINT dfew_sp" : "BEGIN IMMEDIATE");
    if (!rc)
        db->tx_depth++;
    return rc;
}

int db_commit(struct db *db)
{
    if (db->tx_depth <= 0)
        return -EINVAL;
    int rc = db_exec(db, db->tx_depth > 1 ? "RELEASE dfew_sp" : "COMMIT");
    if (!rc)
        db->tx_depth--;
    return rc;
}

void db_rollback(struct db *db)
{
    if (db->tx_depth <= 0)
        return;
    /* After some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite has rolled
     * the whole transaction back itself: a ROLLBACK would then fail, and its
     * "no transaction is active" would replace the message that says what
     * went wrong ("database or disk is full"). */
    if (!sqlite3_get_autocommit(db->h)) {
        if (db->tx_depth > 1)
            db_exec(db, "ROLLBACK TO dfew_sp; RELEASE dfew_sp");
        else
            db_exec(db, "ROLLBACK");
    }
    db->tx_depth--;
}
