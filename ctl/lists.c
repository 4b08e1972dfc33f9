/* dfewctl movies and clips: the two lists a curator looks at, read from the
 * public views movie_status and clip_status (schema/0002_views.sql). */
#include "ctl.h"

static int list(struct ctl *c, int argc, char **argv, const char *usage_text, const char *sql_table,
                const char *sql_json, const char *empty)
{
    int rc = ctl_simple_opts(c, argc, argv, usage_text);
    if (rc >= 0)
        return rc;
    if (ctl_open(c, 0))
        return 1;
    return ctl_print_query(c, c->json ? sql_json : sql_table, NULL, empty) < 0 ? 1 : 0;
}

int cmd_movies(struct ctl *c, int argc, char **argv)
{
    return list(c, argc, argv,
                "usage: dfewctl movies [--json]\n\nMovies with their probe facts (the movie_status view).\n",
                "SELECT movie_id AS id, video_codec AS codec, width || 'x' || height AS size, "
                          "round(avg_fps, 3) AS fps, frame_count AS frames, round(duration_s, 3) AS duration_s, "
                          "round(start_time_s, 3) AS start_s, rotation AS rot, probe_state AS probe, "
                          "coalesce(probe_error, source) || coalesce(' (frames: ' || frame_count_note || ')', '') "
                          "AS 'source / error' FROM movie_status ORDER BY movie_id",
                "SELECT * FROM movie_status ORDER BY movie_id", "no movies yet (dfewctl submit MOVIE)");
}

int cmd_clips(struct ctl *c, int argc, char **argv)
{
    return list(c, argc, argv,
                "usage: dfewctl clips [--json]\n\nClips with their state and face statistics (the clip_status view).\n",
                "SELECT clip_id AS id, movie_id AS movie, start_s, end_s, duration_bucket AS bucket, state, "
                          "face_ratio, coalesce(reason, '') AS reason, coalesce(output_dir, '') AS output "
                          "FROM clip_status ORDER BY clip_id",
                "SELECT * FROM clip_status ORDER BY clip_id", "no clips yet");
}
