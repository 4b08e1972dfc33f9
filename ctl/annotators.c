/* dfewctl annotators and dfewctl web: the people who vote through dfew-web
 * (`annotators add NAME` makes one and prints their personal link once: the
 * database keeps only the SHA-256 of its token; `annotators list` shows each
 * one's progress; `annotators disable NAME` revokes the link, `enable` lets it
 * in again) and the curator's admin token (`web token`, the file
 * HOME/web.token, mode 0600). Not the server: that is web/. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "webtoken.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

static int check_url(const char *cmd, const char *url)
{
    if ((strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) || strlen(url) > 512 || strpbrk(url, " \t\"'<>")) {
        fprintf(stderr, "dfewctl %s: --url must be the server's address as annotators reach it, "
                        "e.g. %s or https://dfew.example.org\n", cmd, DEFAULT_URL);
        return -EINVAL;
    }
    return 0;
}

/* Letters, digits, '_', '-', '.', 1..64 of them: a name that reads well in
 * votes rows and label files. */
static int check_name(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= 64 && *name != '.' && *name != '-' &&
                   strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n
               ? 0
               : -EINVAL;
}

static int annotators_add(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'}, CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl annotators add [--url URL] NAME\n\n"
        "Adds an annotator and prints their personal link to dfew-web (URL: the\n"
        "server's address as they reach it, " DEFAULT_URL " by default). The link\n"
        "holds a random token that is shown only now: the database keeps its SHA-256.\n"
        "Give it to that person only; it opens the annotation pages and nothing else.\n"
        "NAME (letters, digits, _ - ., at most 64) is what their votes carry.\n";
    const char *url = DEFAULT_URL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        if (o == 'u')
            url = optarg;
        else if (o == 'h') {
            printf("%s", usage_text);
            return 0;
        } else
            return 2;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    const char *name = argv[optind];
    if (check_name(name)) {
        fprintf(stderr, "dfewctl annotators add: '%s' is not a usable name: use 1 to 64 letters, digits, '_', '-' "
                        "or '.' (not first)\n", name);
        return 2;
    }
    if (check_url("annotators add", url))
        return 2;
    if (ds_open(c, CTL_CREATE))
        return 1;
    char token[WEB_TOKEN_LEN + 1], hash[65];
    if (web_token_new(token)) {
        fprintf(stderr, "dfewctl annotators add: no random numbers from the kernel\n");
        return 1;
    }
    web_token_hash(token, hash);
    sqlite3_stmt *st = db_prepare(c->db, "INSERT INTO annotators (name, token_sha256, created_at) VALUES (?, ?, ?)");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, now_s());
    int rc = db_step_done(c->db, st);
    if (rc == -EEXIST || sqlite3_extended_errcode(c->db->h) == SQLITE_CONSTRAINT_UNIQUE) {
        fprintf(stderr, "dfewctl annotators add: there is already an annotator '%s' (dfewctl annotators list)\n", name);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "dfewctl annotators add: cannot store '%s': %s\n", name, db_errmsg(c->db));
        return 1;
    }
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add(&b, "{\"name\":");
        sbuf_add_json_str(&b, name);
        sbuf_addf(&b, ",\"link\":\"%.*s/login?token=%s\"}", (int)ul, url, token);
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
    } else {
        printf("%.*s/login?token=%s\n", (int)ul, url, token);
        fprintf(stderr, "annotator '%s' added; the link above is theirs alone and is not shown again\n", name);
    }
    return 0;
}

static int annotators_list(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                             "usage: dfewctl annotators list [--json]\n\n"
                             "Each annotator of dfew-web: votes given, the clips still open to them (usable\n"
                             "clips with fewer than [labels] annotators_per_clip votes and none of theirs),\n"
                             "their last vote, when they were added and whether they are disabled (1:\n"
                             "dfewctl annotators disable revoked their link).\n");
    if (rc >= 0)
        return rc;
    if (ds_open(c, 0))
        return 1;
    int n = ctl_print_query(c,
                            "SELECT p.name, p.votes, "
                            "(SELECT count(*) FROM clips k JOIN clip_vote_counts n ON n.clip_id = k.id "
                            "WHERE k.state = 'usable' AND n.votes < "
                            "(SELECT annotators_per_clip FROM label_settings WHERE id = 1) AND NOT EXISTS "
                            "(SELECT 1 FROM votes v WHERE v.clip_id = k.id AND v.annotator = p.name) AND NOT EXISTS "
                            "(SELECT 1 FROM annotator_skips s WHERE s.clip_id = k.id AND s.annotator_id = "
                            "p.annotator_id)) AS open_clips, "
                            "coalesce(p.last_vote, '') AS last_vote, p.created, p.disabled "
                            "FROM annotator_progress p ORDER BY p.name",
                            NULL, "no annotators (dfewctl annotators add NAME adds one)");
    return n < 0 ? 1 : 0;
}

/* annotators disable NAME / enable NAME: dfew-web stops (or again starts)
 * taking their token; their votes stay. */
static int annotators_set_disabled(struct ctl *c, int argc, char **argv, int disabled)
{
    static const char disable_text[] =
        "usage: dfewctl annotators disable NAME\n\n"
        "Revokes NAME's personal link: dfew-web refuses their token from now on (403,\n"
        "also for a browser that is signed in already). Their votes stay. `dfewctl\n"
        "annotators enable NAME` lets the same link in again; `annotators list` shows\n"
        "who is disabled.\n";
    static const char enable_text[] =
        "usage: dfewctl annotators enable NAME\n\n"
        "Lets a disabled annotator's personal link into dfew-web again (the same link).\n";
    const char *usage_text = disabled ? disable_text : enable_text, *cmd = disabled ? "disable" : "enable";
    int r = ctl_simple_opts(c, argc, argv, usage_text);
    if (r >= 0)
        return r;
    if (optind + 1 != argc) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    const char *name = argv[optind];
    if (ds_open(c, 0))
        return 1;
    sqlite3_stmt *st = db_prepare(c->db, "UPDATE annotators SET disabled = ? WHERE name = ?");
    sqlite3_bind_int(st, 1, disabled);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    int rc = db_step_done(c->db, st);
    if (rc) {
        fprintf(stderr, "dfewctl annotators %s: cannot change '%s': %s\n", cmd, name, db_errmsg(c->db));
        return 1;
    }
    if (sqlite3_changes(c->db->h) == 0) {
        fprintf(stderr, "dfewctl annotators %s: there is no annotator '%s' (dfewctl annotators list)\n", cmd, name);
        return 1;
    }
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add(&b, "{\"name\":");
        sbuf_add_json_str(&b, name);
        sbuf_addf(&b, ",\"disabled\":%s}", disabled ? "true" : "false");
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
    } else {
        printf("annotator '%s' %s\n", name, disabled ? "disabled: dfew-web refuses their link now"
                                                       : "enabled: their link works again");
    }
    return 0;
}

static int annotators_disable(struct ctl *c, int argc, char **argv)
{
    return annotators_set_disabled(c, argc, argv, 1);
}

static int annotators_enable(struct ctl *c, int argc, char **argv)
{
    return annotators_set_disabled(c, argc, argv, 0);
}

int cmd_annotators(struct ctl *c, int argc, char **argv)
{
    static const struct ds_sub subs[] = {{"add", annotators_add},
                                         {"list", annotators_list},
                                         {"disable", annotators_disable},
                                         {"enable", annotators_enable},
                                         {NULL, NULL}};
    static const char usage_text[] = "usage: dfewctl annotators add [--url URL] NAME   a personal dfew-web link\n"
                                     "       dfewctl annotators list                   each annotator's progress\n"
                                     "       dfewctl annotators disable NAME           revoke their link (votes stay)\n"
                                     "       dfewctl annotators enable NAME            let their link in again\n";
    return ds_dispatch(c, argc, argv, subs, usage_text);
}

static int web_token(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                             "usage: dfewctl web token\n\n"
                             "Prints the curator's admin token of dfew-web (HOME/web.token, mode 0600; made\n"
                             "now if there is none). Open http://127.0.0.1:8080/login?token=TOKEN once; the\n"
                             "browser then keeps a session cookie. Delete the file and restart dfew-web for a\n"
                             "new token.\n");
    if (rc >= 0)
        return rc;
    if (ctl_open(c, CTL_CREATE))
        return 1;
    char token[WEB_TOKEN_LEN + 1], why[1024];
    if (web_admin_token(c->paths.home, 1, token, why, sizeof why)) {
        fprintf(stderr, "dfewctl web token: %s\n", why);
        return 1;
    }
    printf("%s\n", token);
    return 0;
}

int cmd_web(struct ctl *c, int argc, char **argv)
{
    static const struct ds_sub subs[] = {{"token", web_token}, {NULL, NULL}};
    return ds_dispatch(c, argc, argv, subs, "usage: dfewctl web token   the curator's admin token of dfew-web\n");
}
