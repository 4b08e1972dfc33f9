/* The fetch job: downloads a submitted URL with libcurl into HOME/downloads,
 * http and https only (redirects too, at most 5), with connect, total and
 * stall timeouts and a size limit, computing the SHA-256 while the bytes
 * arrive. The file is written under a temporary name and renamed when
 * complete; a retry resumes a partial file with a Range request and an
 * If-Range header naming the first response's ETag (or Last-Modified), so
 * that a file that changed on the server is downloaded again from the start
 * and never spliced; without either validator it starts over. The last
 * attempt says why it failed and removes what it downloaded. The daemon
 * then records the movie and queues its probe. It does not parse the video. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dfew_build.h"
#include "hash.h"
#include "util.h"
#include "worker.h"

struct download {
    struct job_ctx *ctx;
    FILE *f;
    struct sha256_stream *sha;
    int64_t resume_from; /* bytes already on disk when this attempt began */
    int64_t written;     /* bytes written by this attempt */
    int64_t max_bytes;
    int restarted;       /* the server could not resume: started from 0 */
    int too_large;
    int write_failed;
    CURL *curl;
    uint64_t last_progress_ms;
    /* validators: the last response's (header callback), and the stored one
     * of the first response ("etag ..." or "date ..."; "" when none) */
    char etag[256], last_modified[128];
    long status;
    char stored[300];
    char *validator_path;
    int seen_data;  /* on_data ran for this transfer */
    int changed;    /* a resumed response is of another version of the file */
};

/* Header lines of every response (redirects too): the status line starts a
 * new response, whose ETag and Last-Modified are kept. */
static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct download *d = ud;
    size_t len = size * n;
    char line[512];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, data, k);
    line[k] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (!strncasecmp(line, "HTTP/", 5)) {
        d->etag[0] = d->last_modified[0] = '\0';
        const char *sp = strchr(line, ' ');
        d->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (!strncasecmp(line, "ETag:", 5)) {
        snprintf(d->etag, sizeof d->etag, "%s", str_trim(line + 5));
    } else if (!strncasecmp(line, "Last-Modified:", 14)) {
        snprintf(d->last_modified, sizeof d->last_modified, "%s", str_trim(line + 14));
    }
    return len;
}

/* The validator of the response now arriving, as stored: a strong ETag
 * (a weak one cannot be used in If-Range), else Last-Modified; "" when none. */
static void response_validator(const struct download *d, char *out, size_t len)
{
    if (d->etag[0] && strncmp(d->etag, "W/", 2))
        snprintf(out, len, "etag %s", d->etag);
    else if (d->last_modified[0])
        snprintf(out, len, "date %s", d->last_modified);
    else
        out[0] = '\0';
}

/* First bytes of a transfer: a fresh one stores its validator before any
 * byte lands in the partial file; a resumed one must be the same version. */
static int first_data(struct download *d)
{
    d->seen_data = 1;
    char now[300];
    response_validator(d, now, sizeof now);
    if (d->resume_from > 0) {
        /* Only a server that ignores If-Range sends a 206 of a changed
         * file; its validator then differs from the first response's. */
        if (now[0] && strcmp(now, d->stored)) {
            d->changed = 1;
            return -1;
        }
        return 0;
    }
    snprintf(d->stored, sizeof d->stored, "%s", now);
    if (now[0]) {
        if (write_file_atomic(d->validator_path, now, strlen(now)) != 0) {
            d->write_failed = errno ? errno : EIO;
            return -1;
        }
    } else {
        unlink(d->validator_path);
    }
    return 0;
}

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
    struct download *d = ud;
    size_t len = size * n;
    if (!d->seen_data && first_data(d) != 0)
        return 0;
    if (d->resume_from + d->written + (int64_t)len > d->max_bytes) {
        d->too_large = 1;
        return 0;
    }
    if (fwrite(data, 1, len, d->f) != len) {
        d->write_failed = errno ? errno : EIO;
        return 0;
    }
    sha256_update(d->sha, data, len);
    d->written += (int64_t)len;
    return len;
}

/* Drops what an earlier attempt downloaded: the next transfer starts at 0. */
static int start_over(struct download *d)
{
    if (ftruncate(fileno(d->f), 0) != 0)
        return -errno;
    char ignored[65];
    sha256_end(d->sha, ignored);
    d->sha = sha256_begin();
    d->resume_from = 0;
    d->written = 0;
    d->restarted = 1;
    d->seen_data = 0;
    d->changed = 0;
    d->stored[0] = '\0';
    unlink(d->validator_path);
    return 0;
}

/* What the first response said, for If-Range; "" when nothing was kept. */
static void read_validator(struct download *d)
{
    char *text = NULL;
    size_t len = 0;
    d->stored[0] = '\0';
    if (read_small_file(d->validator_path, sizeof d->stored - 1, &text, &len) == 0 &&
        (!strncmp(text, "etag ", 5) || !strncmp(text, "date ", 5)) && !strpbrk(text, "\r\n"))
        snprintf(d->stored, sizeof d->stored, "%s", text);
    free(text);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    struct download *d = ud;
    uint64_t t = mono_ms();
    if (t - d->last_progress_ms < 500)
        return 0;
    d->last_progress_ms = t;
    double have = (double)(d->resume_from + dlnow), total = (double)(d->resume_from + dltotal);
    char msg[128];
    if (dltotal > 0)
        snprintf(msg, sizeof msg, "downloaded %.1f of %.1f MiB", have / 1048576.0, total / 1048576.0);
    else
        snprintf(msg, sizeof msg, "downloaded %.1f MiB", have / 1048576.0);
    job_progress(d->ctx, dltotal > 0 ? have / total : 0, msg);
    return 0;
}

/* A file name for humans: the last path segment of the URL, made safe. */
static void url_basename(const char *url, char *out, size_t len)
{
    const char *p = url, *q;
    if ((q = strstr(p, "://")))
        p = q + 3;
    size_t end = strcspn(p, "?#");
    const char *seg = p;
    for (size_t i = 0; i < end; i++)
        if (p[i] == '/')
            seg = p + i + 1;
    size_t n = 0;
    for (const char *c = seg; c < p + end && n + 1 < len && n < 80; c++)
        out[n++] = (isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_') ? *c : '_';
    out[n] = '\0';
    if (!n || out[0] == '.')
        snprintf(out, len, "download");
}

static int is_http_url(const char *url)
{
    return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

int job_fetch(struct job_ctx *ctx)
{
    const char *url = kv_get(ctx->args, "url"), *dir = kv_get(ctx->args, "dest_dir");
    int64_t max_bytes = (int64_t)20 << 30;
    double connect_s = 30, timeout_s = 6 * 3600, stall_s = 60;
    kv_get_i64(ctx->args, "max_bytes", &max_bytes);
    kv_get_double(ctx->args, "connect_timeout_s", &connect_s);
    kv_get_double(ctx->args, "timeout_s", &timeout_s);
    kv_get_double(ctx->args, "stall_s", &stall_s);
    ctx->retryable = 0;
    if (!url || !dir) {
        snprintf(ctx->error, sizeof ctx->error, "fetch job lacks its 'url' or 'dest_dir' argument");
        return -EINVAL;
    }
    if (!is_http_url(url)) {
        snprintf(ctx->error, sizeof ctx->error, "%s: only http:// and https:// URLs can be fetched", url);
        return -EPROTONOSUPPORT;
    }
    int rc = mkdir_p(dir, 0700);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error, "cannot create the download directory %s: %s", dir, strerror(-rc));
        ctx->retryable = 1;
        return rc;
    }
    /* The partial file's name depends only on the URL, so a retry finds it. */
    struct sbuf partial = {0};
    char *pp = fetch_partial_path(dir, url);
    sbuf_add(&partial, pp);
    free(pp);
    struct sbuf validator = {0};
    sbuf_addf(&validator, "%s%s", partial.s, FETCH_VALIDATOR_SUFFIX);

    struct download d = {.ctx = ctx, .max_bytes = max_bytes, .validator_path = validator.s};
    int pfd = open(partial.s, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    d.f = pfd >= 0 ? fdopen(pfd, "a+b") : NULL; /* read back to hash what an earlier attempt got */
    if (!d.f) {
        int e = errno;
        if (pfd >= 0)
            close(pfd);
        snprintf(ctx->error, sizeof ctx->error, "cannot write %s: %s", partial.s, strerror(e));
        ctx->retryable = 1;
        sbuf_free(&partial);
        sbuf_free(&validator);
        return -e;
    }
    struct stat st;
    fstat(fileno(d.f), &st);
    d.resume_from = st.st_size;
    d.sha = sha256_begin();
    if (d.resume_from > 0)
        read_validator(&d);
    if (d.resume_from > 0 && (!d.stored[0] || sha256_update_from_fd(d.sha, fileno(d.f), (uint64_t)d.resume_from) != 0))
        start_over(&d); /* nothing to check the server's file against, or an unreadable partial file */

    char curl_err[CURL_ERROR_SIZE] = "";
    CURL *c = d.curl = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_s * 1000));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)stall_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dfew-fetch/" DFEW_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);

    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &d);

    CURLcode cc;
    for (int tries = 0;; tries++) {
        struct curl_slist *hdrs = NULL;
        if (d.resume_from > 0) {
            /* The rest of the same version, or (a 200) the whole new one. */
            char h[340];
            snprintf(h, sizeof h, "If-Range: %s", d.stored + 5);
            hdrs = curl_slist_append(NULL, h);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(max_bytes - d.resume_from));
        curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)d.resume_from);
        d.seen_data = 0;
        cc = curl_easy_perform(c);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(hdrs);
        /* A server that cannot resume (it answers a Range request with the
         * whole file: the file changed, or it ignores ranges), or a resumed
         * answer of another version, gets one more request, from the start. */
        int again = cc == CURLE_RANGE_ERROR || (cc == CURLE_WRITE_ERROR && d.changed) ||
                    (cc == CURLE_OK && d.resume_from > 0 && d.status != 206); /* a 200 as long as our part */
        if (!again || d.resume_from == 0 || tries > 0 || start_over(&d) != 0)
            break;
        curl_err[0] = '\0';
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    char *eff = NULL;
    curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
    char *ctype = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    struct sbuf final_url = {0}, content_type = {0};
    sbuf_add(&final_url, eff ? eff : url);
    sbuf_add(&content_type, ctype ? ctype : "");
    if (fflush(d.f) != 0 && cc == CURLE_OK) {
        d.write_failed = errno;
        cc = CURLE_WRITE_ERROR;
    }
    if (cc == CURLE_OK && fsync(fileno(d.f)) != 0) {
        d.write_failed = errno;
        cc = CURLE_WRITE_ERROR;
    }
    fclose(d.f);
    curl_easy_cleanup(c);
    char sha[65];
    sha256_end(d.sha, sha);

    int64_t total = d.resume_from + d.written;
    if (cc != CURLE_OK) {
        const char *detail = curl_err[0] ? curl_err : curl_easy_strerror(cc);
        int keep_partial = 1;
        rc = -EIO;
        if (d.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(ctx->error, sizeof ctx->error,
                     "%s: larger than the download limit of %lld bytes ([fetch] max_bytes in dfew.conf)", url,
                     (long long)max_bytes);
            keep_partial = 0;
            rc = -EFBIG;
        } else if (cc == CURLE_HTTP_RETURNED_ERROR && code == 416 && d.resume_from > 0) {
            /* "Range not satisfiable": our partial file does not fit what the
             * server has now. Start over on the next attempt. */
            snprintf(ctx->error, sizeof ctx->error, "%s: the server refused to resume at byte %lld (HTTP 416); "
                     "starting over", url, (long long)d.resume_from);
            ctx->retryable = 1;
            keep_partial = 0;
        } else if (cc == CURLE_HTTP_RETURNED_ERROR) {
            snprintf(ctx->error, sizeof ctx->error, "%s: the server answered HTTP %ld%s", url, code,
                     code == 404 ? " (not found: check the URL)" : code >= 500 ? " (a server error; retrying)" : "");
            ctx->retryable = code >= 500 || code == 408 || code == 429;
            keep_partial = ctx->retryable;
        } else if (cc == CURLE_UNSUPPORTED_PROTOCOL) {
            snprintf(ctx->error, sizeof ctx->error,
                     "%s: refused a redirect to %s: only http:// and https:// are fetched (%s)", url,
                     final_url.s ? final_url.s : "another scheme", detail);
            keep_partial = 0;
            rc = -EPROTONOSUPPORT;
        } else if (cc == CURLE_TOO_MANY_REDIRECTS) {
            snprintf(ctx->error, sizeof ctx->error, "%s: more than 5 redirects; check the URL", url);
            keep_partial = 0;
        } else if (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_URL_MALFORMAT) {
            snprintf(ctx->error, sizeof ctx->error, "%s: %s; check the URL (or this machine's DNS)", url, detail);
            keep_partial = 0;
            rc = -EHOSTUNREACH;
        } else if (cc == CURLE_WRITE_ERROR && d.changed) {
            snprintf(ctx->error, sizeof ctx->error, "%s: the file changed on the server while it was downloaded "
                     "(another ETag or Last-Modified); starting over", url);
            ctx->retryable = 1;
            keep_partial = 0;
        } else if (cc == CURLE_WRITE_ERROR && d.write_failed) {
            snprintf(ctx->error, sizeof ctx->error, "%s: cannot write %s: %s", url, partial.s,
                     strerror(d.write_failed));
            ctx->retryable = 1;
        } else {
            /* Connection refused, reset, cut short, timed out, stalled: the
             * next attempt resumes from what arrived. */
            snprintf(ctx->error, sizeof ctx->error, "%s: %s after %lld bytes; will resume", url, detail,
                     (long long)total);
            ctx->retryable = 1;
        }
        if (ctx->retryable && ctx->max_attempts > 0 && ctx->attempt >= ctx->max_attempts) {
            /* The last attempt: say why it ends, and keep nothing. */
            char *tail;
            if ((tail = strstr(ctx->error, "; will resume")) || (tail = strstr(ctx->error, " (a server error; retrying)")) ||
                (tail = strstr(ctx->error, "; starting over")))
                *tail = '\0';
            size_t n = strlen(ctx->error);
            snprintf(ctx->error + n, sizeof ctx->error - n,
                     "; gave up after %d attempts ([queue] max_attempts), the partial download was removed: "
                     "'dfewctl retry %lld' starts it again",
                     ctx->attempt, (long long)ctx->id);
            keep_partial = 0;
        }
        if (!keep_partial) {
            unlink(partial.s);
            unlink(validator.s);
        }
        sbuf_free(&partial);
        sbuf_free(&validator);
        sbuf_free(&final_url);
        sbuf_free(&content_type);
        return rc;
    }

    char base[96];
    url_basename(final_url.s, base, sizeof base);
    struct sbuf dest = {0};
    sbuf_addf(&dest, "%s/%.16s-%s", dir, sha, base);
    unlink(validator.s);
    if (rename(partial.s, dest.s) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "cannot rename %s to %s: %s", partial.s, dest.s, strerror(errno));
        ctx->retryable = 1;
        rc = -errno;
    } else {
        kv_set(&ctx->result, "path", dest.s);
        kv_set(&ctx->result, "sha256", sha);
        kv_setf(&ctx->result, "size_bytes", "%lld", (long long)total);
        kv_set(&ctx->result, "url", url);
        kv_set(&ctx->result, "final_url", final_url.s);
        kv_set(&ctx->result, "content_type", content_type.s);
        kv_setf(&ctx->result, "resumed_from", "%lld", (long long)(d.restarted ? 0 : d.resume_from));
        rc = 0;
    }
    sbuf_free(&dest);
    sbuf_free(&partial);
    sbuf_free(&validator);
    sbuf_free(&final_url);
    sbuf_free(&content_type);
    return rc;
}
