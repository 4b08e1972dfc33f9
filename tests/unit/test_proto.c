/* Unit tests for the worker protocol (lib/proto.c), the config file
 * (lib/config.c) and the string/number helpers (lib/util.c). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "proto.h"
#include "util.h"

static void test_roundtrip(void)
{
    const char *vals[] = {"plain", "two words", "a=b", "100%", "line\nbreak\r\ttab", "/path/with spaces/ünï.mp4",
                          "", "%41", "{\"json\": [1, 2]}"};
    struct kv kv = {0};
    char key[16];
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        snprintf(key, sizeof key, "k%zu", i);
        kv_set(&kv, key, vals[i]);
    }
    struct sbuf line = {0};
    CHECK_EQ_INT(proto_format(&line, "job", &kv), 0);
    CHECK(line.len > 0 && line.s[line.len - 1] == '\n');
    CHECK(memchr(line.s, '\n', line.len - 1) == NULL); /* one line, whatever the values */
    struct proto_msg m;
    CHECK_EQ_INT(proto_parse(line.s, line.len - 1, &m), 0);
    CHECK_EQ_STR(m.verb, "job");
    CHECK_EQ_INT(m.kv.n, ARRAY_LEN(vals));
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        snprintf(key, sizeof key, "k%zu", i);
        CHECK_EQ_STR(kv_get(&m.kv, key), vals[i]);
    }
    proto_msg_free(&m);
    sbuf_free(&line);
    kv_free(&kv);
}

static void test_format_exact(void)
{
    struct kv kv = {0};
    kv_set(&kv, "id", "7");
    kv_set(&kv, "error", "no such file");
    kv_set(&kv, "id", "8"); /* replaces */
    struct sbuf line = {0};
    proto_format(&line, "fail", &kv);
    CHECK_EQ_STR(line.s, "fail id=8 error=no%20such%20file\n");
    int64_t id = 0;
    CHECK_EQ_INT(kv_get_i64(&kv, "id", &id), 0);
    CHECK_EQ_INT(id, 8);
    CHECK_EQ_INT(kv_get_i64(&kv, "error", &id), -EINVAL);
    CHECK_EQ_INT(kv_get_i64(&kv, "missing", &id), -ENOENT);
    sbuf_free(&line);
    kv_free(&kv);
}

static void test_parse_errors(void)
{
    const char *bad[] = {"", "Job id=1", "job id", "job =1", "job id=%zz", "job id=%4", "job ID=1", "job id=%00",
                         "verb-with-dash a=1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct proto_msg m;
        int rc = proto_parse(bad[i], strlen(bad[i]), &m);
        if (rc != -EPROTO)
            fprintf(stderr, "accepted bad line: '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, -EPROTO);
    }
    struct proto_msg m;
    CHECK_EQ_INT(proto_parse("quit\r", 5, &m), 0); /* CRLF tolerated */
    CHECK_EQ_STR(m.verb, "quit");
    proto_msg_free(&m);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_config(void)
{
    char dir[] = "/tmp/dfew-test-conf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/dfew.conf", dir);
    struct dfew_config c;

    config_defaults(&c);
    CHECK_EQ_INT(config_load(path, &c, err, sizeof err), 0); /* missing file: defaults */
    CHECK_EQ_INT(c.max_attempts, 3);
    CHECK(c.lease_s == 60);
    CHECK_EQ_INT(config_limit(&c, "probe"), 0);
    CHECK_EQ_INT(config_limit(&c, "noop"), 0);
    CHECK_EQ_INT(config_limit(&c, "train"), 1); /* one trainer slot */
    CHECK(config_timeout(&c, "train") == 0);    /* a train job runs for hours: no default timeout */
    CHECK(config_timeout(&c, "probe") == 600);
    CHECK(c.train_backends == NULL);
    config_free(&c);

    write_file(path, "# comment\n[daemon]\nworkers = 4\ndrain_seconds = 1.5m\n\n[queue]\nlease_seconds=10s # x\n"
                     "max_attempts = 5\nretry_base_seconds = 250ms\n[limits]\nprobe = 2\n[timeouts]\nnoop = 1h\n"
                     "[batch]\nincoming = /srv/in\n[limits]\ntrain = 2\n[train]\nbackends = /opt/b\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load(path, &c, err, sizeof err), 0);
    CHECK_EQ_INT(c.workers, 4);
    CHECK(c.drain_s == 90);
    CHECK(c.lease_s == 10);
    CHECK_EQ_INT(c.max_attempts, 5);
    CHECK(c.retry_base_s == 0.25);
    CHECK_EQ_INT(config_limit(&c, "probe"), 2);
    CHECK(config_timeout(&c, "noop") == 3600);
    CHECK_EQ_STR(c.incoming_dir, "/srv/in");
    CHECK_EQ_INT(config_limit(&c, "train"), 2);
    CHECK_EQ_STR(c.train_backends, "/opt/b");
    /* [prep] defaults */
    CHECK_EQ_INT(c.prep_frames, 16);
    CHECK_EQ_INT(c.prep_size, 112);
    CHECK(c.prep_min_face_ratio == 0.5);
    CHECK_EQ_STR(c.prep_interp, "tim");
    CHECK_EQ_STR(c.prep_image_format, "png");
    CHECK_EQ_STR(c.prep_template, DFEW_PREP_TEMPLATE);
    CHECK_EQ_STR(c.prep_landmark_model, DFEW_LANDMARK_MODEL);
    CHECK_EQ_INT(c.prep_whole_movie, -1);
    /* the face tracker's: fast, faces from dlib's 80 px, a whole-frame search every second */
    CHECK_EQ_STR(c.prep_detect, "fast");
    CHECK_EQ_STR(c.prep_subject, "longest");
    CHECK(c.prep_min_face_px == 80 && c.prep_detect_interval_s == 2.0 && c.prep_track_gap_s == 0.5);
    /* [segment] defaults: shots, the paper's 20 clips of 1-10 s */
    CHECK_EQ_INT(config_segment_mode(&c), SEGMENT_SHOTS);
    CHECK(c.segment_cut_threshold == 0.15 && c.segment_detect_interval_s == 1.0 && c.segment_track_gap_s == 0.5);
    CHECK(c.segment_min_s == 1 && c.segment_max_s == 10);
    CHECK_EQ_INT(c.segment_max_clips, 20);
    config_free(&c);

    write_file(path, "[prep]\nframes = 8\nsize = 224\nmin_face_ratio = 0.75\ninterp = linear\nimage_format = jpg\n"
                     "template = 1,2 3,4 5,6 7,8 9.5,10\ntemplate_size = 50\nlandmark_model = /m.dat\nupsample = 1\n"
                     "whole_movie = no\ndetect = every_frame\nmin_face_px = 120\ndetect_interval = 2s\n"
                     "track_gap = 250ms\nsubject = largest_first\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load(path, &c, err, sizeof err), 0);
    CHECK_EQ_INT(c.prep_frames, 8);
    CHECK_EQ_INT(c.prep_size, 224);
    CHECK(c.prep_min_face_ratio == 0.75);
    CHECK_EQ_STR(c.prep_interp, "linear");
    CHECK_EQ_STR(c.prep_image_format, "jpg");
    CHECK_EQ_STR(c.prep_template, "1,2 3,4 5,6 7,8 9.5,10");
    CHECK_EQ_INT(c.prep_template_size, 50);
    CHECK_EQ_STR(c.prep_landmark_model, "/m.dat");
    CHECK_EQ_INT(c.prep_upsample, 1);
    CHECK_EQ_INT(c.prep_whole_movie, 0);
    CHECK_EQ_STR(c.prep_detect, "every_frame");
    CHECK_EQ_STR(c.prep_subject, "largest_first");
    CHECK(c.prep_min_face_px == 120 && c.prep_detect_interval_s == 2 && c.prep_track_gap_s == 0.25);
    CHECK_EQ_INT(config_segment_mode(&c), SEGMENT_OFF); /* the older key, as [segment] mode = off */
    config_free(&c);

    write_file(path, "[segment]\nmode = whole\ncut_threshold = 0.3\ndetect_interval = 250ms\nmin_seconds = 2\n"
                     "max_seconds = 5\ntrack_gap = 1s\nmax_clips = 7\n");
    config_defaults(&c);
    CHECK_EQ_INT(config_load(path, &c, err, sizeof err), 0);
    CHECK_EQ_INT(config_segment_mode(&c), SEGMENT_WHOLE);
    CHECK(c.segment_cut_threshold == 0.3 && c.segment_detect_interval_s == 0.25 && c.segment_track_gap_s == 1);
    CHECK(c.segment_min_s == 2 && c.segment_max_s == 5);
    CHECK_EQ_INT(c.segment_max_clips, 7);
    config_free(&c);

    const struct {
        const char *text, *expect;
    } bad[] = {
        {"[daemon]\nworkerz = 2\n", ":2: unknown key 'workerz' in [daemon]"},
        {"workers = 2\n", ":1: 'workers' is outside any [section]"},
        {"[queue]\nlease_seconds = soon\n", ":2: lease_seconds wants a duration"},
        {"[queue]\nmax_attempts = 0\n", ":2: max_attempts wants a whole number >= 1"},
        {"[limits]\nprobes = 1\n", ":2: [limits] keys are job kinds"},
        {"[nope]\n", ":1: unknown section [nope]"},
        {"[daemon]\njust words\n", ":2: expected 'key = value'"},
        {"[prep]\ninterp = cubic\n", ":2: interp is one of tim|linear, not 'cubic'"},
        {"[prep]\nmin_face_ratio = 1.5\n", ":2: min_face_ratio wants a number from 0 to 1"},
        {"[prep]\nsize = 8\n", ":2: size wants a whole number from 16 to 2048"},
        {"[prep]\ntemplate = 1,2 3,4\n", ":2: template wants 5 points"},
        {"[prep]\nimage_format = gif\n", ":2: image_format is one of png|jpg"},
        {"[prep]\nwhole_movie = maybe\n", ":2: whole_movie is yes or no"},
        {"[segment]\nmode = auto\n", ":2: mode is one of shots|whole|off"},
        {"[segment]\ncut_threshold = 2\n", ":2: cut_threshold wants a number from 0 to 1"},
        {"[segment]\nmax_clips = 0\n", ":2: max_clips wants a whole number >= 1"},
        {"[segment]\nmin_seconds = 5\nmax_seconds = 2\n", "min_seconds = 5 is more than max_seconds = 2"},
        {"[prep]\nwhole_movie = yes\n[segment]\nmode = shots\n", "keep only [segment] mode"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        write_file(path, bad[i].text);
        config_defaults(&c);
        err[0] = '\0';
        CHECK_EQ_INT(config_load(path, &c, err, sizeof err), -EINVAL);
        if (!strstr(err, bad[i].expect))
            fprintf(stderr, "config error '%s' lacks '%s'\n", err, bad[i].expect);
        CHECK(strstr(err, bad[i].expect) != NULL);
        config_free(&c);
    }
    unlink(path);
    rmdir(dir);
}

static void test_util(void)
{
    double s;
    CHECK(parse_seconds("30", &s) == 0 && s == 30);
    CHECK(parse_seconds("2.5s", &s) == 0 && s == 2.5);
    CHECK(parse_seconds("5m", &s) == 0 && s == 300);
    CHECK(parse_seconds("2h", &s) == 0 && s == 7200);
    CHECK(parse_seconds("250ms", &s) == 0 && s == 0.25);
    CHECK(parse_seconds("-1", &s) < 0);
    double pts[10];
    CHECK(parse_points(" 1,2 3.5,-4 ", pts, 2) == 0 && pts[2] == 3.5 && pts[3] == -4);
    CHECK(parse_points("1,2 3,4 5", pts, 3) < 0);
    CHECK(parse_points("1,2,3,4", pts, 2) < 0);
    CHECK(parse_points("1,2 3,4 5,6", pts, 2) < 0);
    CHECK(parse_seconds("5 parsecs", &s) < 0);
    int v;
    CHECK(parse_int("42", &v) == 0 && v == 42);
    CHECK(parse_int("42x", &v) == -EINVAL);
    CHECK(parse_int("99999999999", &v) == -ERANGE);
    double d;
    CHECK(parse_double("0x10", &d) == 0); /* strtod accepts hex; JSON output guards itself */
    CHECK(parse_double("nan", &d) == -EINVAL);
    struct sbuf b = {0};
    sbuf_add_json_str(&b, "a\"b\\c\nd\x01");
    CHECK_EQ_STR(b.s, "\"a\\\"b\\\\c\\nd\\u0001\"");
    sbuf_free(&b);
    char iso[40];
    format_time_iso(0.5, iso, sizeof iso);
    CHECK_EQ_STR(iso, "1970-01-01T00:00:00.500Z");
}

int main(void)
{
    RUN(test_roundtrip);
    RUN(test_format_exact);
    RUN(test_parse_errors);
    RUN(test_config);
    RUN(test_util);
    return check_report();
}
