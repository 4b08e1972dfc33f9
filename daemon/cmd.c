/* Short commands dfewd runs without blocking its loop (sbatch, squeue,
 * scancel for the Slurm executor): uv_spawn, stdout and stderr collected,
 * a time limit, and one callback once the process has exited and every
 * handle of it is closed. Not for workers: pool.c owns those. */
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

/* Output beyond this is dropped (a command that floods is broken). */
#define CMD_MAX_OUTPUT (4u << 20)

static void on_closed(uv_handle_t *h)
{
    struct cmd *c = h->data;
    if (--c->open_handles > 0)
        return;
    c->d->cmds_running--;
    c->done(c, c->data);
    sbuf_free(&c->out);
    sbuf_free(&c->err);
    free(c->what);
    free(c);
}

static void close_all(struct cmd *c)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&c->proc, (uv_handle_t *)&c->out_pipe, (uv_handle_t *)&c->err_pipe,
                         (uv_handle_t *)&c->timer};
    for (size_t i = 0; i < ARRAY_LEN(hs); i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], on_closed);
}

static void maybe_done(struct cmd *c)
{
    if (c->exited && c->out_eof && c->err_eof)
        close_all(c);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct cmd *c = p->data;
    c->exited = 1;
    c->status = status;
    c->term_signal = term_signal;
    uv_timer_stop(&c->timer);
    maybe_done(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct cmd *c = t->data;
    if (!c->exited) {
        c->timed_out = 1;
        uv_process_kill(&c->proc, SIGKILL);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cmd *c = s->data;
    int is_err = s == (uv_stream_t *)&c->err_pipe;
    struct sbuf *b = is_err ? &c->err : &c->out;
    if (nread > 0 && b->len < CMD_MAX_OUTPUT)
        sbuf_addn(b, buf->base, (size_t)nread);
    else if (nread < 0) {
        uv_read_stop(s);
        *(is_err ? &c->err_eof : &c->out_eof) = 1;
        maybe_done(c);
    }
    free(buf->base);
}

int cmd_start(struct daemon *d, char **argv, char **env, double timeout_s, cmd_cb done, void *data)
{
    struct cmd *c = xcalloc(1, sizeof *c);
    c->d = d;
    c->done = done;
    c->data = data;
    c->what = xstrdup(argv[0]);
    uv_pipe_init(&d->loop, &c->out_pipe, 0);
    uv_pipe_init(&d->loop, &c->err_pipe, 0);
    uv_timer_init(&d->loop, &c->timer);
    c->proc.data = c->out_pipe.data = c->err_pipe.data = c->timer.data = c;
    c->open_handles = 4;
    d->cmds_running++;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&c->out_pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&c->err_pipe;
    uv_process_options_t opt = {0};
    opt.exit_cb = on_exit_cb;
    opt.file = argv[0];
    opt.args = argv;
    opt.env = env;
    opt.stdio_count = 3;
    opt.stdio = stdio;
    int rc = uv_spawn(&d->loop, &c->proc, &opt);
    if (rc) {
        /* the process handle is initialised even when spawning fails: close it too */
        c->spawn_rc = rc;
        c->exited = c->out_eof = c->err_eof = 1;
        sbuf_addf(&c->err, "cannot run %s: %s", argv[0], uv_strerror(rc));
        close_all(c);
        return rc;
    }
    uv_read_start((uv_stream_t *)&c->out_pipe, alloc_cb, on_read);
    uv_read_start((uv_stream_t *)&c->err_pipe, alloc_cb, on_read);
    if (timeout_s > 0)
        uv_timer_start(&c->timer, on_timeout, (uint64_t)(timeout_s * 1000), 0);
    return 0;
}

int cmd_ok(const struct cmd *c) { return !c->spawn_rc && !c->timed_out && !c->term_signal && c->status == 0; }

const char *cmd_why(struct cmd *c)
{
    /* stderr's last non-empty line says it best; else how it ended */
    char *s = c->err.s;
    size_t n = c->err.len;
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    if (n) {
        char *nl = strrchr(s, '\n');
        return nl ? nl + 1 : s;
    }
    sbuf_reset(&c->err);
    if (c->timed_out)
        sbuf_addf(&c->err, "%s did not answer in time (is slurmctld reachable?)", c->what);
    else if (c->term_signal)
        sbuf_addf(&c->err, "%s was killed by signal %d", c->what, c->term_signal);
    else
        sbuf_addf(&c->err, "%s exited with status %lld", c->what, (long long)c->status);
    return c->err.s;
}
