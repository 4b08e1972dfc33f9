/* Reading dfew.conf (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "util.h"

void config_defaults(struct dfew_config *c)
{
    memset(c, 0, sizeof *c);
    c->workers = 0;
    c->drain_s = 30;
    c->respawn_min_s = 0.2;
    c->respawn_max_s = 30;
    c->lease_s = 60;
    c->max_attempts = 3;
    c->retry_base_s = 10;
    c->retry_max_s = 3600;
    c->sweep_s = 30;
    c->fetch_max_bytes = (int64_t)20 << 30;
    c->fetch_connect_s = 30;
    c->fetch_timeout_s = 6 * 3600;
    c->fetch_stall_s = 60;
    c->single_label_threshold = 6; /* the DFEW paper's: more than 6 of 10 votes */
    c->annotators_per_clip = 10;
    kv_set(&c->limits, "train", "1"); /* one trainer slot: one GPU, or the CPU */
    kv_set(&c->timeouts, "probe", "600");
    c->prep_frames = 16;
    c->prep_size = 112;
    c->prep_min_face_ratio = 0.5;
    c->prep_interp = xstrdup("tim");
    c->prep_image_format = xstrdup("png");
    c->prep_template = xstrdup(DFEW_PREP_TEMPLATE);
    c->prep_template_size = 112;
    c->prep_landmark_model = xstrdup(DFEW_LANDMARK_MODEL);
    c->prep_upsample = 0;
    c->prep_whole_movie = -1;
    c->prep_keep_aligned = 1;
    c->prep_detect = xstrdup("fast");
    c->prep_min_face_px = 80; /* dlib's HOG finds faces down to about 80 px without upsampling */
    c->prep_detect_interval_s = 2.0;
    c->prep_track_gap_s = 0.5;
    c->prep_range_min_s = 5.0;
    c->prep_follow_frames = 2;
    c->prep_subject = xstrdup("longest");
    c->segment_cut_threshold = 0.15;
    c->segment_detect_interval_s = 1.0; /* whole-frame searches; followed faces are looked for in every frame */
    c->segment_min_s = 1;
    c->segment_max_s = 10;
    c->segment_track_gap_s = 0.5;
    c->segment_max_clips = 20; /* the DFEW paper: at most 20 clips per movie */
    c->slurm_max_jobs = 64;
    c->slurm_max_train_jobs = 5; /* the paper's five folds at once, one GPU each */
    c->slurm_poll_s = 2;
    c->slurm_check_storage = 1;
    c->slurm_check_timeout_s = 600;
    c->slurm_result_grace_s = 60;
}

enum executor_kind config_executor(const struct dfew_config *c)
{
    return c->executor && !strcmp(c->executor, "slurm") ? EXECUTOR_SLURM : EXECUTOR_LOCAL;
}

const char *config_slurm_res(const struct dfew_config *c, const char *what, const char *kind)
{
    char key[64];
    snprintf(key, sizeof key, "%s_%s", what, kind);
    const char *v = kv_get(&c->slurm_res, key);
    if (v)
        return v;
    if (!strcmp(what, "gres") && !strcmp(kind, "train"))
        return "gpu:1";
    if (!strcmp(what, "cpus") && (!strcmp(kind, "prep") || !strcmp(kind, "segment")) && !kv_get(&c->slurm_res, what))
        return "2";
    if (!strcmp(what, "cpus") && !strcmp(kind, "train") && !kv_get(&c->slurm_res, what))
        return "4";
    if (!strcmp(what, "cpus") && !kv_get(&c->slurm_res, what))
        return "1";
    if (!strcmp(what, "gres"))
        return NULL; /* gres is per kind only: a GPU for a probe job would be a waste */
    return kv_get(&c->slurm_res, what);
}

enum segment_mode config_segment_mode(const struct dfew_config *c)
{
    if (c->segment_mode && !strcmp(c->segment_mode, "whole"))
        return SEGMENT_WHOLE;
    if (c->segment_mode && !strcmp(c->segment_mode, "off"))
        return SEGMENT_OFF;
    return SEGMENT_SHOTS;
}

void config_free(struct dfew_config *c)
{
    free(c->worker_program);
    free(c->incoming_dir);
    free(c->prep_interp);
    free(c->prep_image_format);
    free(c->prep_template);
    free(c->prep_landmark_model);
    free(c->prep_detect);
    free(c->prep_subject);
    free(c->train_backends);
    free(c->segment_mode);
    free(c->executor);
    free(c->slurm_partition);
    free(c->slurm_account);
    free(c->slurm_options);
    kv_free(&c->slurm_res);
    kv_free(&c->limits);
    kv_free(&c->timeouts);
    memset(c, 0, sizeof *c);
}

enum ktype { K_INT, K_SECONDS, K_STRING, K_BYTES, K_DOUBLE, K_CHOICE, K_POINTS5, K_BOOL };

struct key_desc {
    const char *section, *key;
    enum ktype type;
    size_t off;
    double min;
    double max;          /* K_INT, K_DOUBLE: 0 = no upper bound */
    const char *choices; /* K_CHOICE: "a|b" */
};

#define OFF(f) offsetof(struct dfew_config, f)
static const struct key_desc keys[] = {
    {"daemon", "workers", K_INT, OFF(workers), 0, 0, NULL},
    {"daemon", "threads_per_job", K_INT, OFF(threads_per_job), 0, 0, NULL},
    {"daemon", "drain_seconds", K_SECONDS, OFF(drain_s), 0, 0, NULL},
    {"daemon", "respawn_min_seconds", K_SECONDS, OFF(respawn_min_s), 0, 0, NULL},
    {"daemon", "respawn_max_seconds", K_SECONDS, OFF(respawn_max_s), 0, 0, NULL},
    {"daemon", "worker_program", K_STRING, OFF(worker_program), 0, 0, NULL},
    {"queue", "lease_seconds", K_SECONDS, OFF(lease_s), 1, 0, NULL},
    {"queue", "max_attempts", K_INT, OFF(max_attempts), 1, 0, NULL},
    {"queue", "retry_base_seconds", K_SECONDS, OFF(retry_base_s), 0, 0, NULL},
    {"queue", "retry_max_seconds", K_SECONDS, OFF(retry_max_s), 0, 0, NULL},
    {"queue", "sweep_seconds", K_SECONDS, OFF(sweep_s), 0.1, 0, NULL},
    {"batch", "incoming", K_STRING, OFF(incoming_dir), 0, 0, NULL},
    {"fetch", "max_bytes", K_BYTES, OFF(fetch_max_bytes), 1, 0, NULL},
    {"fetch", "connect_timeout", K_SECONDS, OFF(fetch_connect_s), 0.1, 0, NULL},
    {"fetch", "timeout", K_SECONDS, OFF(fetch_timeout_s), 1, 0, NULL},
    {"fetch", "stall_seconds", K_SECONDS, OFF(fetch_stall_s), 1, 0, NULL},
    {"labels", "single_label_threshold", K_INT, OFF(single_label_threshold), 0, 0, NULL},
    {"labels", "annotators_per_clip", K_INT, OFF(annotators_per_clip), 1, 0, NULL},
    {"prep", "frames", K_INT, OFF(prep_frames), 1, 1000, NULL},
    {"prep", "size", K_INT, OFF(prep_size), 16, 2048, NULL},
    {"prep", "min_face_ratio", K_DOUBLE, OFF(prep_min_face_ratio), 0, 1, NULL},
    {"prep", "interp", K_CHOICE, OFF(prep_interp), 0, 0, "tim|linear"},
    {"prep", "image_format", K_CHOICE, OFF(prep_image_format), 0, 0, "png|jpg"},
    {"prep", "template", K_POINTS5, OFF(prep_template), 0, 0, NULL},
    {"prep", "template_size", K_INT, OFF(prep_template_size), 1, 100000, NULL},
    {"prep", "landmark_model", K_STRING, OFF(prep_landmark_model), 0, 0, NULL},
    {"prep", "upsample", K_INT, OFF(prep_upsample), 0, 2, NULL},
    {"prep", "whole_movie", K_BOOL, OFF(prep_whole_movie), 0, 0, NULL},
    {"prep", "keep_aligned", K_BOOL, OFF(prep_keep_aligned), 0, 0, NULL},
    {"prep", "detect", K_CHOICE, OFF(prep_detect), 0, 0, "fast|every_frame"},
    {"prep", "min_face_px", K_DOUBLE, OFF(prep_min_face_px), 1, 100000, NULL},
    {"prep", "detect_interval", K_SECONDS, OFF(prep_detect_interval_s), 0, 0, NULL},
    {"prep", "track_gap", K_SECONDS, OFF(prep_track_gap_s), 0, 0, NULL},
    {"prep", "range_min", K_SECONDS, OFF(prep_range_min_s), 0, 0, NULL},
    {"prep", "follow_frames", K_INT, OFF(prep_follow_frames), 0, 5, NULL},
    {"prep", "subject", K_CHOICE, OFF(prep_subject), 0, 0, "longest|largest_first"},
    {"train", "backends", K_STRING, OFF(train_backends), 0, 0, NULL},
    {"segment", "mode", K_CHOICE, OFF(segment_mode), 0, 0, "shots|whole|off"},
    {"segment", "cut_threshold", K_DOUBLE, OFF(segment_cut_threshold), 0, 1, NULL},
    {"segment", "detect_interval", K_SECONDS, OFF(segment_detect_interval_s), 0, 0, NULL},
    {"segment", "min_seconds", K_SECONDS, OFF(segment_min_s), 0.04, 0, NULL},
    {"segment", "max_seconds", K_SECONDS, OFF(segment_max_s), 0.04, 0, NULL},
    {"segment", "track_gap", K_SECONDS, OFF(segment_track_gap_s), 0, 0, NULL},
    {"segment", "max_clips", K_INT, OFF(segment_max_clips), 1, 0, NULL},
    {"executor", "kind", K_CHOICE, OFF(executor), 0, 0, "local|slurm"},
    {"slurm", "partition", K_STRING, OFF(slurm_partition), 0, 0, NULL},
    {"slurm", "account", K_STRING, OFF(slurm_account), 0, 0, NULL},
    {"slurm", "options", K_STRING, OFF(slurm_options), 0, 0, NULL},
    {"slurm", "max_jobs", K_INT, OFF(slurm_max_jobs), 1, 100000, NULL},
    {"slurm", "max_train_jobs", K_INT, OFF(slurm_max_train_jobs), 0, 100000, NULL},
    {"slurm", "poll_interval", K_SECONDS, OFF(slurm_poll_s), 0.1, 0, NULL},
    {"slurm", "check_storage", K_BOOL, OFF(slurm_check_storage), 0, 0, NULL},
    {"slurm", "check_timeout", K_SECONDS, OFF(slurm_check_timeout_s), 1, 0, NULL},
    {"slurm", "result_grace", K_SECONDS, OFF(slurm_result_grace_s), 0, 0, NULL},
};

/* A word Slurm takes as a name (partition, account, gres): letters, digits
 * and - _ . : , = / (no spaces, nothing a shell or Slurm would split). */
static int slurm_word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.:,=/+", *s))
            return 0;
    return 1;
}

/* [slurm] time|cpus|mem|gres[_KIND] = value: checked and normalised into
 * c->slurm_res. Returns 1 when key is one of them (why set on a bad value). */
static int slurm_resource(struct dfew_config *c, const char *key, const char *val, char *why, size_t whylen)
{
    static const char *const whats[] = {"time", "cpus", "mem", "gres"};
    const char *what = NULL;
    for (size_t i = 0; i < ARRAY_LEN(whats); i++) {
        size_t n = strlen(whats[i]);
        if (!strncmp(key, whats[i], n) && (key[n] == '\0' || key[n] == '_')) {
            what = whats[i];
            if (key[n] == '_' && !job_kind_known(key + n + 1)) {
                snprintf(why, whylen, "[slurm] %s_KIND: '%s' is not a job kind (%s)", what, key + n + 1,
                         JOB_KINDS_HELP);
                return 1;
            }
        }
    }
    if (!what)
        return 0;
    if (!strcmp(what, "time")) {
        double s;
        if (parse_seconds(val, &s) || s < 60)
            snprintf(why, whylen, "%s wants a time limit of at least a minute such as 30m, 2h or 2d, not '%s'",
                     key, val);
        else
            kv_setf(&c->slurm_res, key, "%.0f", s);
    } else if (!strcmp(what, "cpus")) {
        int n;
        if (parse_int(val, &n) || n < 1 || n > 255)
            snprintf(why, whylen, "%s wants a number of CPUs from 1 to 255, not '%s'", key, val);
        else
            kv_setf(&c->slurm_res, key, "%d", n);
    } else if (!strcmp(what, "mem")) {
        int64_t b;
        if (parse_bytes(val, &b) || b < (1 << 20))
            snprintf(why, whylen, "%s wants a memory size such as 4G or 500M, not '%s'", key, val);
        else
            kv_setf(&c->slurm_res, key, "%lld", (long long)b);
    } else if (!strcmp(val, "none") || slurm_word(val)) {
        if (!strcmp(key, "gres"))
            snprintf(why, whylen, "gres is set per kind (gres_train = gpu:1), not for every job");
        else
            kv_set(&c->slurm_res, key, val);
    } else {
        snprintf(why, whylen, "%s wants a generic resource such as gpu:1 or gpu:a100:1, or none, not '%s'", key, val);
    }
    return 1;
}


static int set_key(struct dfew_config *c, const struct key_desc *k, const char *val,
                   char *why, size_t whylen)
{
    double max = k->max;
    char *base = (char *)c + k->off;
    switch (k->type) {
    case K_INT: {
        int v;
        if (parse_int(val, &v) || v < k->min || (max && v > max)) {
            if (max)
                snprintf(why, whylen, "%s wants a whole number from %g to %g, not '%s'", k->key, k->min, max, val);
            else
                snprintf(why, whylen, "%s wants a whole number >= %g, not '%s'", k->key, k->min, val);
            return -EINVAL;
        }
        *(int *)base = v;
        return 0;
    }
    case K_SECONDS: {
        double v;
        if (parse_seconds(val, &v) || v < k->min) {
            snprintf(why, whylen, "%s wants a duration >= %gs such as 30, 2.5s, 5m or 1h, not '%s'", k->key,
                     k->min, val);
            return -EINVAL;
        }
        *(double *)base = v;
        return 0;
    }
    case K_BYTES: {
        int64_t v;
        if (parse_bytes(val, &v) || v < k->min) {
            snprintf(why, whylen, "%s wants a size such as 500M, 20G or 1048576, not '%s'", k->key, val);
            return -EINVAL;
        }
        *(int64_t *)base = v;
        return 0;
    }
    case K_DOUBLE: {
        double v;
        if (parse_double(val, &v) || v < k->min || (max && v > max)) {
            snprintf(why, whylen, "%s wants a number from %g to %g, not '%s'", k->key, k->min, max, val);
            return -EINVAL;
        }
        *(double *)base = v;
        return 0;
    }
    case K_CHOICE:
        if (!k->choices || !str_one_of(val, k->choices)) {
            snprintf(why, whylen, "%s is one of %s, not '%s'", k->key, k->choices ? k->choices : "?", val);
            return -EINVAL;
        }
        free(*(char **)base);
        *(char **)base = xstrdup(val);
        return 0;
    case K_BOOL:
        if (!strcmp(val, "yes") || !strcmp(val, "true") || !strcmp(val, "on") || !strcmp(val, "1"))
            *(int *)base = 1;
        else if (!strcmp(val, "no") || !strcmp(val, "false") || !strcmp(val, "off") || !strcmp(val, "0"))
            *(int *)base = 0;
        else {
            snprintf(why, whylen, "%s is yes or no, not '%s'", k->key, val);
            return -EINVAL;
        }
        return 0;
    case K_POINTS5: {
        double pts[10];
        if (parse_points(val, pts, 5)) {
            snprintf(why, whylen,
                     "%s wants 5 points 'x,y' separated by spaces (left eye, right eye, nose tip, left and right "
                     "mouth corner), not '%s'",
                     k->key, val);
            return -EINVAL;
        }
        free(*(char **)base);
        *(char **)base = xstrdup(val);
        return 0;
    }
    case K_STRING:
        free(*(char **)base);
        *(char **)base = *val ? xstrdup(val) : NULL;
        return 0;
    }
    return -EINVAL;
}

/* Sections: those of the keys table, and the per-kind ones. */
static int section_known(const char *name)
{
    if (!strcmp(name, "limits") || !strcmp(name, "timeouts"))
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (!strcmp(keys[i].section, name))
            return 1;
    return 0;
}

static const char *known_sections(void)
{
    static char list[256];
    if (!list[0]) {
        struct sbuf b = {0};
        for (size_t i = 0; i < ARRAY_LEN(keys); i++)
            if (i == 0 || strcmp(keys[i].section, keys[i - 1].section))
                sbuf_addf(&b, "[%s] ", keys[i].section);
        sbuf_add(&b, "[limits] [timeouts]");
        snprintf(list, sizeof list, "%s", sbuf_str(&b));
        sbuf_free(&b);
    }
    return list;
}

/* Where each key was set, to name both lines of a duplicate. */
struct seen_key {
    char *name; /* "section.key" */
    int line;
};

static int seen_check(struct seen_key **seen, size_t *n, const char *section, const char *key, int line,
                      char *why, size_t whylen)
{
    char *name;
    if (asprintf(&name, "%s.%s", section, key) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*seen)[i].name, name)) {
            snprintf(why, whylen, "'%s' in [%s] is set twice, on line %d and on line %d; keep one", key, section,
                     (*seen)[i].line, line);
            free(name);
            return -EINVAL;
        }
    *seen = xrealloc(*seen, (*n + 1) * sizeof **seen);
    (*seen)[(*n)++] = (struct seen_key){name, line};
    return 0;
}

/* One line (NUL-terminated, comment and all) into c; why says what is wrong. */
static void parse_line(struct dfew_config *c, char *line, char *section, size_t seclen, struct seen_key **seen,
                       size_t *nseen, int lineno, char *why, size_t whylen)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *s = str_trim(line);
    if (!*s)
        return;
    if (*s == '[') {
        char *end = strchr(s, ']');
        if (!end || end[1]) {
            snprintf(why, whylen, "a section header looks like [name]");
        } else {
            *end = '\0';
            snprintf(section, seclen, "%s", str_trim(s + 1));
            if (!section_known(section)) {
                snprintf(why, whylen, "unknown section [%.60s]; known: %s", section, known_sections());
                section[0] = '\0';
            }
        }
        return;
    }
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(why, whylen, "expected 'key = value'");
        return;
    }
    *eq = '\0';
    char *key = str_trim(s), *val = str_trim(eq + 1);
    if (!*section) {
        snprintf(why, whylen, "'%.100s' is outside any [section]", key);
    } else if (!strcmp(section, "limits") || !strcmp(section, "timeouts")) {
        double d;
        int n;
        if (!job_kind_known(key))
            snprintf(why, whylen, "[%s] keys are job kinds (%s), not '%.100s'", section, JOB_KINDS_HELP, key);
        else if (!strcmp(section, "limits") && (parse_int(val, &n) || n < 0))
            snprintf(why, whylen, "limit for %s must be a whole number >= 0, not '%.100s'", key, val);
        else if (!strcmp(section, "timeouts") && (parse_seconds(val, &d) || d <= 0))
            snprintf(why, whylen, "timeout for %s must be a positive duration, not '%.100s'", key, val);
        else if (seen_check(seen, nseen, section, key, lineno, why, whylen) == 0) {
            if (!strcmp(section, "limits"))
                kv_set(&c->limits, key, val);
            else
                kv_setf(&c->timeouts, key, "%.17g", d);
        }
    } else {
        const struct key_desc *k = NULL;
        for (size_t i = 0; i < ARRAY_LEN(keys); i++)
            if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
                k = &keys[i];
        if (!k && !strcmp(section, "slurm")) {
            if (seen_check(seen, nseen, section, key, lineno, why, whylen) == 0 &&
                !slurm_resource(c, key, val, why, whylen))
                snprintf(why, whylen,
                         "unknown key '%.100s' in [slurm]; known: partition, account, options, max_jobs, "
                         "max_train_jobs, poll_interval, check_storage, check_timeout, result_grace, and "
                         "time, cpus, mem, gres, each also per kind (time_train)",
                         key);
        } else if (!k)
            snprintf(why, whylen, "unknown key '%.100s' in [%s]", key, section);
        else if (seen_check(seen, nseen, section, key, lineno, why, whylen) == 0)
            set_key(c, k, val, why, whylen);
    }
}

int config_parse(const char *name, const char *text, size_t len, struct dfew_config *c, char *err, size_t errlen)
{
    char section[64] = "";
    struct seen_key *seen = NULL;
    size_t nseen = 0;
    int lineno = 0, rc = 0;
    for (size_t pos = 0; !rc && pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        char why[512] = "";
        if (n > CONFIG_MAX_LINE) {
            snprintf(why, sizeof why, "the line is %zu bytes long, more than %d; shorten it (comments too)", n,
                     CONFIG_MAX_LINE);
        } else if (memchr(text + pos, '\0', n)) {
            snprintf(why, sizeof why, "a NUL byte; is this a text file?");
        } else {
            char *line = xmalloc(n + 1);
            memcpy(line, text + pos, n);
            line[n] = '\0';
            parse_line(c, line, section, sizeof section, &seen, &nseen, lineno, why, sizeof why);
            free(line);
        }
        if (*why) {
            snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
            rc = -EINVAL;
        }
        pos += n + 1;
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i].name);
    free(seen);
    const char *path = name;
    if (!rc && c->single_label_threshold >= c->annotators_per_clip) {
        snprintf(err, errlen,
                 "%s: [labels] single_label_threshold = %d leaves no clip single-labelled: a label needs more than %d "
                 "votes and a clip has at most annotators_per_clip = %d; lower the threshold (the paper's is 6 of 10)",
                 path, c->single_label_threshold, c->single_label_threshold, c->annotators_per_clip);
        rc = -EINVAL;
    }
    if (!rc && c->segment_min_s > c->segment_max_s) {
        snprintf(err, errlen, "%s: [segment] min_seconds = %g is more than max_seconds = %g; a clip cannot be both",
                 path, c->segment_min_s, c->segment_max_s);
        rc = -EINVAL;
    }
    const char *bad = !rc && c->slurm_partition && !slurm_word(c->slurm_partition) ? "partition"
                      : !rc && c->slurm_account && !slurm_word(c->slurm_account) ? "account"
                                                                                 : NULL;
    if (bad) {
        snprintf(err, errlen, "%s: [slurm] %s = '%s' is not a Slurm name (letters, digits, - _ . only)", path, bad,
                 bad[0] == 'p' ? c->slurm_partition : c->slurm_account);
        rc = -EINVAL;
    }
    if (!rc && c->slurm_options) {
        /* each word an option of its own: sbatch gets them as arguments, no shell */
        char *copy = xstrdup(c->slurm_options), *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); w && !rc; w = strtok_r(NULL, " \t", &save))
            if (w[0] != '-') {
                snprintf(err, errlen,
                         "%s: [slurm] options: '%s' is not an sbatch option (each word starts with -, values joined "
                         "with =: --qos=normal --constraint=avx2)",
                         path, w);
                rc = -EINVAL;
            }
        free(copy);
    }
    if (!rc && c->prep_whole_movie >= 0) {
        /* the older key says what [segment] mode says now */
        if (c->segment_mode) {
            snprintf(err, errlen,
                     "%s: [prep] whole_movie and [segment] mode both say what happens to a movie without a clip "
                     "list; keep only [segment] mode (whole_movie = yes is mode = whole, no is mode = off)",
                     path);
            rc = -EINVAL;
        } else {
            c->segment_mode = xstrdup(c->prep_whole_movie ? "whole" : "off");
        }
    }
    return rc;
}

int config_load(const char *path, struct dfew_config *c, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_small_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT)
        return 0; /* no file: the defaults */
    if (rc) {
        snprintf(err, errlen, "%s: cannot read the config file: %s%s", path,
                 rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc),
                 rc == -EISDIR ? " (a directory; dfew.conf must be a file)"
                 : rc == -EACCES ? " (check its permissions: dfewd's user must read it)" : "");
        return rc;
    }
    rc = config_parse(path, text, len, c, err, errlen);
    free(text);
    return rc;
}

int config_limit(const struct dfew_config *c, const char *kind)
{
    int n = 0;
    const char *v = kv_get(&c->limits, kind);
    if (v && parse_int(v, &n) == 0)
        return n;
    return 0;
}

double config_timeout(const struct dfew_config *c, const char *kind)
{
    double d = 0;
    const char *v = kv_get(&c->timeouts, kind);
    if (v && parse_seconds(v, &d) == 0)
        return d;
    return 0;
}
