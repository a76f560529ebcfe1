#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"

static struct {
    enum log_level level;
    bool json;
} log_sink = {LOG_INFO, false};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { log_sink.level = level; }
void log_set_json(bool json) { log_sink.json = json; }

int log_level_parse(enum log_level *out, const char *name)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return RV_EINVAL;
}

static void json_escape_to(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    if (level < log_sink.level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    /* One fprintf per line keeps lines whole when threads log at once. */
    if (log_sink.json) {
        char line[4096];
        FILE *mem = fmemopen(line, sizeof(line) - 2, "w");
        if (mem == NULL)
            return;
        fprintf(mem, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", when,
                ts.tv_nsec / 1000000, level_names[level]);
        json_escape_to(mem, component);
        fputs("\",\"msg\":\"", mem);
        json_escape_to(mem, msg);
        fputs("\"}", mem);
        long n = ftell(mem);
        fclose(mem);
        if (n < 0)
            return;
        line[n] = '\0';
        fprintf(stderr, "%s\n", line);
    } else {
        fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000,
                level_names[level], component, msg);
    }
}
