/* The secrets of dfew-web: random tokens (an annotator's personal link, the
 * curator's admin token), their SHA-256 (what the database keeps of an
 * annotator's token), constant-time comparison, and the admin token file
 * HOME/web.token (mode 0600, made on first use). Not the HTTP side: that is
 * web/. */
#ifndef DFEW_WEBTOKEN_H
#define DFEW_WEBTOKEN_H

#include <stddef.h>

#define WEB_TOKEN_LEN 48 /* hex digits: 24 random bytes from getrandom() */
#define WEB_TOKEN_FILE "web.token"

/* A new random token, WEB_TOKEN_LEN lowercase hex digits and a NUL. 0 or -errno. */
int web_token_new(char out[WEB_TOKEN_LEN + 1]);
/* Whether s is shaped like a token (exactly WEB_TOKEN_LEN lowercase hex digits). */
int web_token_valid(const char *s);
/* SHA-256 of the token's text as 64 hex digits. */
void web_token_hash(const char *token, char hex[65]);
/* Compares two NUL-terminated strings in time that depends only on their lengths. */
int web_token_equal(const char *a, const char *b);

/* The admin token of the home: HOME/web.token. With create, a missing file is
 * made (0600, written atomically). A file that others can read or write, or
 * that holds no valid token, is refused (-EPERM / -EINVAL) with the reason in
 * why: a token others can read is no secret. 0 or a negative errno. */
int web_admin_token(const char *home, int create, char out[WEB_TOKEN_LEN + 1], char *why, size_t whylen);

#endif
