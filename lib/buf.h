/* buf.h - a growable byte buffer, always NUL-terminated. */
#ifndef REEVE_BUF_H
#define REEVE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* Each returns 0 or RV_ENOMEM; on failure the buffer is unchanged. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Hand the data to the caller (free() it); the buffer is left empty. */
char *buf_detach(struct buf *b);
void buf_clear(struct buf *b);

#endif
