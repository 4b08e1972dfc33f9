/* One-line log records for dfew programs (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char log_prog[32] = "dfew";
static FILE *log_out;
static enum log_level log_max = LOG_INFO;

void log_init(const char *prog, FILE *out, enum log_level max_level)
{
    snprintf(log_prog, sizeof log_prog, "%s", prog);
    log_out = out;
    log_max = max_level;
}

void log_set_output(FILE *out) { log_out = out; }

void log_msg(enum log_level lvl, int64_t job_id, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (lvl > log_max)
        return;
    char ts[40];
    format_time_iso(now_s(), ts, sizeof ts);
    struct sbuf b = {0};
    sbuf_addf(&b, "%s %s[%d] %s ", ts, log_prog, (int)getpid(), names[lvl]);
    if (job_id > 0)
        sbuf_addf(&b, "job=%lld ", (long long)job_id);
    va_list ap;
    va_start(ap, fmt);
    sbuf_vaddf(&b, fmt, ap);
    va_end(ap);
    /* One record, one line, even when the message carries a newline. */
    for (size_t i = 0; i < b.len; i++)
        if (b.s[i] == '\n' || b.s[i] == '\r')
            b.s[i] = ' ';
    sbuf_addc(&b, '\n');
    FILE *out = log_out ? log_out : stderr;
    fwrite(b.s, 1, b.len, out);
    fflush(out);
    sbuf_free(&b);
}
