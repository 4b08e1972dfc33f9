/* Encoding and decoding of the dfewd <-> dfew-worker line protocol (see proto.h). */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_key(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!is_key_char(*s))
            return 0;
    return 1;
}

static int needs_escape(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '%' || c == '=';
}

int proto_encode_value(struct sbuf *out, const char *val)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)val; *p && !rc; p++) {
        if (needs_escape(*p)) {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = sbuf_addn(out, e, 3);
        } else {
            rc = sbuf_addc(out, (char)*p);
        }
    }
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int proto_decode_value(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EPROTO;
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

int proto_format(struct sbuf *out, const char *verb, const struct kv *kv)
{
    int rc = sbuf_add(out, verb);
    for (size_t i = 0; kv && i < kv->n && !rc; i++) {
        rc = sbuf_addc(out, ' ');
        if (!rc)
            rc = sbuf_add(out, kv->v[i].key);
        if (!rc)
            rc = sbuf_addc(out, '=');
        if (!rc)
            rc = proto_encode_value(out, kv->v[i].val);
    }
    return rc ? rc : sbuf_addc(out, '\n');
}

int proto_parse(const char *line, size_t len, struct proto_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len && line[len - 1] == '\r')
        len--;
    char *buf = xmalloc(len + 1);
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        return -EPROTO;
    }
    int rc = 0;
    char *save = NULL;
    char *tok = strtok_r(buf, " ", &save);
    if (!tok || strlen(tok) >= sizeof m->verb || !is_key(tok)) {
        rc = -EPROTO;
        goto out;
    }
    strcpy(m->verb, tok);
    while ((tok = strtok_r(NULL, " ", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            rc = -EPROTO;
            goto out;
        }
        *eq = '\0';
        if (!is_key(tok) || proto_decode_value(eq + 1)) {
            rc = -EPROTO;
            goto out;
        }
        kv_set(&m->kv, tok, eq + 1);
    }
out:
    free(buf);
    if (rc)
        proto_msg_free(m);
    return rc;
}

void proto_msg_free(struct proto_msg *m) { kv_free(&m->kv); }

enum ctl_request ctl_request_parse(const char *line, int64_t *id)
{
    *id = 0;
    if (!strcmp(line, "ping"))
        return CTLREQ_PING;
    if (!strcmp(line, "wake"))
        return CTLREQ_WAKE;
    if (!strcmp(line, "status"))
        return CTLREQ_STATUS;
    if (!strncmp(line, "cancel ", 7)) {
        const char *p = line + 7;
        if (strspn(p, "0123456789") != strlen(p) || parse_i64(p, id) || *id <= 0)
            return CTLREQ_BAD;
        return CTLREQ_CANCEL;
    }
    return CTLREQ_BAD;
}
