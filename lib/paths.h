/* Where a dfew home directory keeps its files. The home is chosen by --home,
 * else $DFEW_HOME, else $XDG_DATA_HOME/dfew, else ~/.local/share/dfew; the
 * system service uses /var/lib/dfew. */
#ifndef DFEW_PATHS_H
#define DFEW_PATHS_H

#include <stddef.h>

struct dfew_paths {
    char *home;    /* absolute */
    char *db;      /* home/dfew.db */
    char *sock;    /* home/dfewd.sock, the control socket (mode 0600) */
    char *lock;    /* home/dfewd.lock, held by the running daemon */
    char *conf;    /* home/dfew.conf */
    char *log;     /* home/dfewd.log, used when dfewd runs in the background */
    char *outputs; /* home/outputs, per-job output files */
};

/* Resolves the home (creating it with mode 0700 when create is set). */
int paths_init(struct dfew_paths *p, const char *opt_home, int create, char *err, size_t errlen);
void paths_free(struct dfew_paths *p);

#endif
