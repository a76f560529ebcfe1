#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rv_strerror(int code)
{
    switch (code) {
    case RV_OK:
        return "success";
#define RV_ERR_STR(name, value, desc) \
    case RV_E##name:                 \
        return desc;
        RV_ERRNO_MAP(RV_ERR_STR)
#undef RV_ERR_STR
    default:
        return "unknown error";
    }
}

const char *rv_errname(int code)
{
    switch (code) {
    case RV_OK:
        return "OK";
#define RV_ERR_NAME(name, value, desc) \
    case RV_E##name:                  \
        return #name;
        RV_ERRNO_MAP(RV_ERR_NAME)
#undef RV_ERR_NAME
    default:
        return "UNKNOWN";
    }
}

int rv_error_set(struct rv_error *err, int code, bool retryable, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->retryable = retryable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void rv_error_clear(struct rv_error *err)
{
    if (err == NULL)
        return;
    err->code = RV_OK;
    err->retryable = false;
    err->msg[0] = '\0';
}
