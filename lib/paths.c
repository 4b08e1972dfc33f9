/* Resolution of the dfew home directory and the files inside it (see paths.h). */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

static char *join(const char *a, const char *b)
{
    struct sbuf s = {0};
    sbuf_addf(&s, "%s/%s", a, b);
    return sbuf_take(&s);
}

int paths_init(struct dfew_paths *p, const char *opt_home, int create, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    struct sbuf h = {0};
    const char *env;
    if (opt_home && *opt_home)
        sbuf_add(&h, opt_home);
    else if ((env = getenv("DFEW_HOME")) && *env)
        sbuf_add(&h, env);
    else if ((env = getenv("XDG_DATA_HOME")) && *env)
        sbuf_addf(&h, "%s/dfew", env);
    else if ((env = getenv("HOME")) && *env)
        sbuf_addf(&h, "%s/.local/share/dfew", env);
    else {
        snprintf(err, errlen, "no home directory: pass --home DIR or set DFEW_HOME");
        return -EINVAL;
    }
    if (create) {
        int rc = mkdir_p(sbuf_str(&h), 0700);
        if (rc) {
            snprintf(err, errlen, "cannot create the dfew home %s: %s", sbuf_str(&h), strerror(-rc));
            sbuf_free(&h);
            return rc;
        }
    }
    char *abs;
    int rc = abs_path(sbuf_str(&h), &abs);
    if (rc) {
        snprintf(err, errlen,
                 "dfew home %s does not exist: start dfewd or submit a movie to create it, or pass --home DIR",
                 sbuf_str(&h));
        sbuf_free(&h);
        return rc;
    }
    sbuf_free(&h);
    p->home = abs;
    p->db = join(abs, "dfew.db");
    p->sock = join(abs, "dfewd.sock");
    p->lock = join(abs, "dfewd.lock");
    p->conf = join(abs, "dfew.conf");
    p->log = join(abs, "dfewd.log");
    p->outputs = join(abs, "outputs");
    struct sockaddr_un sa;
    if (strlen(p->sock) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "the dfew home path %s is too long for a unix socket (max %zu bytes); use a shorter --home",
                 abs, sizeof sa.sun_path - sizeof "/dfewd.sock");
        paths_free(p);
        return -ENAMETOOLONG;
    }
    return 0;
}

void paths_free(struct dfew_paths *p)
{
    free(p->home);
    free(p->db);
    free(p->sock);
    free(p->lock);
    free(p->conf);
    free(p->log);
    free(p->outputs);
    memset(p, 0, sizeof *p);
}
