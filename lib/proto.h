/* The line protocol between dfewd and its dfew-worker processes, over the
 * worker's stdin (jobs) and stdout (results). Versioned: the worker's first
 * line is "hello proto=N ..." and the daemon refuses a version it does not speak.
 *
 * A message is one line: VERB SP key=value SP key=value ... LF
 * Keys are [a-z0-9_]; values are percent-encoded (space, '%', '=', control
 * bytes and DEL become %XX), so any byte string travels safely.
 *
 *   worker -> daemon  hello    proto=1 pid=N kinds=noop,probe version=X
 *   daemon -> worker  job      id=N kind=K attempt=A max_attempts=M <job arguments>
 *   worker -> daemon  progress id=N frac=0..1 msg=TEXT
 *   worker -> daemon  done     id=N <result fields>
 *   worker -> daemon  fail     id=N retry=0|1 error=TEXT
 *   daemon -> worker  quit                      (finish and exit 0)
 */
#ifndef DFEW_PROTO_H
#define DFEW_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "util.h"

#define DFEW_PROTO_VERSION 1
/* Lines longer than this are a protocol error (the sender is broken). */
#define DFEW_PROTO_MAX_LINE (1u << 20)

struct proto_msg {
    char verb[32];
    struct kv kv;
};

/* Parses one line (without its LF). -EPROTO on malformed input. */
int proto_parse(const char *line, size_t len, struct proto_msg *m);
/* Appends "verb k=v ...\n" to out. */
int proto_format(struct sbuf *out, const char *verb, const struct kv *kv);
void proto_msg_free(struct proto_msg *m);

int proto_encode_value(struct sbuf *out, const char *val);
/* Decodes in place; -EPROTO on a bad escape. */
int proto_decode_value(char *s);

/* dfewd's control socket: one request line (without its LF) from dfewctl:
 * "ping", "wake", "status" or "cancel ID" (ID: decimal digits, > 0). */
enum ctl_request { CTLREQ_BAD, CTLREQ_PING, CTLREQ_WAKE, CTLREQ_STATUS, CTLREQ_CANCEL };
enum ctl_request ctl_request_parse(const char *line, int64_t *id);

#endif
