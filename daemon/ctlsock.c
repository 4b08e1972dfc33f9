/* The control socket: a unix stream socket (mode 0600) in the dfew home. A
 * client sends one line and gets one line back:
 *   ping        -> pong
 *   wake        -> ok        (new work is in the database: look now)
 *   status      -> {JSON}    (workers, running jobs, counters)
 *   cancel ID   -> ok        (stop the worker running job ID, if any)
 * The database stays the source of truth; this only nudges and reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "dfew_build.h"
#include "log.h"
#include "proto.h"

#define CTL_MAX_REQUEST 4096

struct ctl_client {
    uv_pipe_t pipe;
    uv_write_t wreq;
    struct daemon *d;
    struct sbuf in;
    char *reply;
    int answered;
    struct ctl_client *prev, *next; /* d->clients: open connections */
};

static void client_closed(uv_handle_t *h)
{
    struct ctl_client *c = h->data;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sbuf_free(&c->in);
    free(c->reply);
    free(c);
}

static void client_close(struct ctl_client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void on_reply_written(uv_write_t *req, int status)
{
    (void)status;
    client_close(req->data);
}

static const char *worker_state_name(enum worker_state s)
{
    switch (s) {
    case W_SPAWNING: return "starting";
    case W_IDLE: return "idle";
    case W_BUSY: return "busy";
    case W_EXITING: return "exiting";
    case W_WAITING: return "restarting";
    }
    return "?";
}

static void add_slots(struct sbuf *b, struct daemon *d, int trainer, double t)
{
    int n = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->trainer != trainer || (w->retiring && w->state == W_WAITING))
            continue;
        sbuf_addf(b, "%s{\"slot\":%d,\"pid\":%d,\"state\":\"%s\"", n++ ? "," : "", w->slot, w->pid,
                  worker_state_name(w->state));
        if (w->has_job) {
            sbuf_addf(b, ",\"job\":%lld,\"kind\":", (long long)w->job.id);
            sbuf_add_json_str(b, w->job.kind);
            sbuf_addf(b, ",\"attempt\":%d,\"running_s\":%.3f", w->job.attempt, t - w->job_started);
            slurm_slot_json(b, w);
        }
        sbuf_addc(b, '}');
    }
}

char *daemon_status_json(struct daemon *d)
{
    struct sbuf b = {0};
    double t = now_s();
    sbuf_addf(&b, "{\"pid\":%d,\"version\":", (int)getpid());
    sbuf_add_json_str(&b, DFEW_VERSION);
    sbuf_add(&b, ",\"home\":");
    sbuf_add_json_str(&b, d->paths.home);
    sbuf_addf(&b, ",\"uptime_s\":%.3f,\"draining\":%s,\"jobs_done\":%llu,\"jobs_failed\":%llu,\"jobs_requeued\":%llu",
              t - d->started_at, d->draining ? "true" : "false", (unsigned long long)d->jobs_done,
              (unsigned long long)d->jobs_failed, (unsigned long long)d->jobs_requeued);
    sbuf_addf(&b, ",\"executor\":\"%s\",\"ready\":%s", d->executor == EXECUTOR_SLURM ? "slurm" : "local",
              d->starting ? "false" : "true");
    sbuf_addf(&b, ",\"workers_target\":%d,\"workers\":[", pool_target_size(d));
    add_slots(&b, d, 0, t);
    /* trainer slots: train jobs only, beside the workers ([limits] train) */
    sbuf_addf(&b, "],\"trainers_target\":%d,\"trainers\":[", pool_trainer_target(d));
    add_slots(&b, d, 1, t);
    sbuf_add(&b, "]}");
    return sbuf_take(&b);
}

static void answer(struct ctl_client *c, const char *line)
{
    struct daemon *d = c->d;
    struct sbuf r = {0};
    int64_t id;
    enum ctl_request req = ctl_request_parse(line, &id);
    if (req == CTLREQ_PING) {
        sbuf_add(&r, "pong");
    } else if (req == CTLREQ_WAKE) {
        sched_kick(d);
        sbuf_add(&r, d->draining ? "draining" : "ok");
    } else if (req == CTLREQ_STATUS) {
        char *s = daemon_status_json(d);
        sbuf_add(&r, s);
        free(s);
    } else if (req == CTLREQ_CANCEL) {
        struct worker *w = pool_find_job(d, id);
        if (w) {
            if (d->executor == EXECUTOR_SLURM)
                log_info(id, "cancelled by dfewctl; cancelling its Slurm job");
            else
                log_info(id, "cancelled by dfewctl; stopping worker %d (pid %d)", w->slot, w->pid);
            pool_kill(w, KILL_CANCEL);
            sbuf_add(&r, "ok stopped");
        } else {
            sbuf_add(&r, "ok not-running");
        }
        sched_kick(d);
    } else {
        sbuf_add(&r, "error unknown request (ping, wake, status, cancel ID)");
    }
    sbuf_addc(&r, '\n');
    c->reply = sbuf_take(&r);
    c->answered = 1;
    uv_buf_t buf = uv_buf_init(c->reply, (unsigned)strlen(c->reply));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &buf, 1, on_reply_written))
        client_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(1024);
    buf->len = buf->base ? 1024 : 0;
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ctl_client *c = s->data;
    if (nread > 0 && !c->answered) {
        sbuf_addn(&c->in, buf->base, (size_t)nread);
        char *nl = memchr(c->in.s, '\n', c->in.len);
        if (nl) {
            *nl = '\0';
            if (nl > c->in.s && nl[-1] == '\r')
                nl[-1] = '\0';
            uv_read_stop(s);
            answer(c, c->in.s);
        } else if (c->in.len > CTL_MAX_REQUEST) {
            uv_read_stop(s);
            client_close(c);
        }
    } else if (nread < 0) {
        uv_read_stop(s);
        if (!c->answered)
            client_close(c);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct daemon *d = server->data;
    if (status < 0) {
        log_warn(0, "control socket: %s", uv_strerror(status));
        return;
    }
    struct ctl_client *c = xcalloc(1, sizeof *c);
    c->d = d;
    uv_pipe_init(&d->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->next = d->clients;
    if (c->next)
        c->next->prev = c;
    d->clients = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, on_client_read);
}

int ctlsock_start(struct daemon *d, char *err, size_t errlen)
{
    uv_pipe_init(&d->loop, &d->ctl_server, 0);
    d->ctl_server.data = d;
    d->ctl_listening = 1;
    /* We hold the home's lock, so a socket file left here is stale. */
    unlink(d->paths.sock);
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&d->ctl_server, d->paths.sock);
    umask(old);
    if (!rc && chmod(d->paths.sock, 0600) != 0)
        rc = -errno;
    if (!rc)
        rc = uv_listen((uv_stream_t *)&d->ctl_server, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "cannot listen on the control socket %s: %s", d->paths.sock, uv_strerror(rc));
        return rc;
    }
    return 0;
}

void ctlsock_close(struct daemon *d)
{
    if (d->ctl_listening) {
        d->ctl_listening = 0;
        uv_close((uv_handle_t *)&d->ctl_server, NULL);
        unlink(d->paths.sock);
    }
    for (struct ctl_client *c = d->clients; c; c = c->next)
        client_close(c);
}
