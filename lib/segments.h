/* The database side of automatic segmentation: queuing a movie's segment
 * job (its arguments are the [segment] recipe, fixed when it is queued) and
 * recording its outcome, the shots and the chosen clips from the job's
 * segments.json, with their prep jobs. Not the segmentation itself
 * (workers/segment.c). */
#ifndef DFEW_SEGMENTS_H
#define DFEW_SEGMENTS_H

#include <stdint.h>

#include "config.h"
#include "db.h"

/* The path of a movie's segments.json: outputs_dir/movies/<id>/segments.json. */
char *segments_path(const char *outputs_dir, int64_t movie_id);

/* Queues the segment job of a probed movie that has no clips (dedup key
 * segment:<movie id>); *queued is 1 when a job was added. Call inside a
 * transaction. */
int segments_queue(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                   int priority, int *queued);

/* Records a finished segment job from json (the text of its segments.json):
 * replaces the movie's shots, sets its segment columns, adds the chosen
 * clips (origin 'segment') and queues their prep jobs. -EINVAL with a
 * reason in err when json is not this movie's segments file. Call inside a
 * transaction. */
int segments_record(struct db *db, const struct dfew_config *cfg, const char *outputs_dir, int64_t movie_id,
                    const char *json, int priority, int *clips_added, int *prep_queued, char *err, size_t errlen);

#endif
