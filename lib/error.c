/* Status codes as text and as names, both from CF_STATUS_MAP (cfutures.h). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

const char *cf_strerror(int status) {
  switch (status) {
#define CF__STRERROR_CASE(name, value, text)                                   \
  case name:                                                                   \
    return text;
    CF_STATUS_MAP(CF__STRERROR_CASE)
#undef CF__STRERROR_CASE
  default:
    return "unknown error";
  }
}

const char *cf_err_name(int status) {
  switch (status) {
#define CF__ERR_NAME_CASE(name, value, text)                                   \
  case name:                                                                   \
    return #name;
    CF_STATUS_MAP(CF__ERR_NAME_CASE)
#undef CF__ERR_NAME_CASE
  default:
    return "CF_UNKNOWN";
  }
}

/* The words of the last failed pool create on this thread ("" if none). */
static _Thread_local char cf__last_error[512];

void cf__set_last_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cf__last_error, sizeof cf__last_error, fmt, ap);
  va_end(ap);
}

void cf__clear_last_error(void) { cf__last_error[0] = '\0'; }

const char *cf_last_error_message(void) { return cf__last_error; }
