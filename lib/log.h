/* One-line log records: time, program[pid], level, job id, message. The daemon
 * writes one line per event; nothing here decides what is worth logging. */
#ifndef DFEW_LOG_H
#define DFEW_LOG_H

#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* prog: "dfewd", "dfew-worker", ... ; out: where lines go (default stderr). */
void log_init(const char *prog, FILE *out, enum log_level max_level);
void log_set_output(FILE *out);
/* job_id <= 0 means "not about a job". */
void log_msg(enum log_level lvl, int64_t job_id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(job, ...) log_msg(LOG_ERROR, (job), __VA_ARGS__)
#define log_warn(job, ...) log_msg(LOG_WARN, (job), __VA_ARGS__)
#define log_info(job, ...) log_msg(LOG_INFO, (job), __VA_ARGS__)
#define log_debug(job, ...) log_msg(LOG_DEBUG, (job), __VA_ARGS__)

#endif
