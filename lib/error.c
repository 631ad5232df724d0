/* Status codes as text. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

const char *cf_strerror(int status) {
  switch (status) {
  case CF_OK: return "success";
  case CF_EINVAL: return "invalid argument";
  case CF_ENOMEM: return "out of memory";
  case CF_ETIMEDOUT: return "timed out";
  case CF_ECANCELLED: return "cancelled";
  case CF_ETASK: return "task failed";
  case CF_EBROKEN: return "executor is broken";
  case CF_ESHUTDOWN: return "executor is shut down";
  case CF_ESTATE: return "invalid state for this operation";
  case CF_EDEADLK: return "would deadlock";
  case CF_EOF: return "no more items";
  case CF_EAGAIN: return "resource temporarily unavailable";
  case CF_EWORKERDIED: return "worker died";
  case CF_EPROTO: return "malformed message from worker";
  case CF_ESYS: return "system call failed";
  case CF_ENOTSUP: return "not supported by this executor";
  default: return "unknown error";
  }
}

#define CF__STR2(x) #x
#define CF__STR(x) CF__STR2(x)

const char *cf_version(void) {
  return CF__STR(CF_VERSION_MAJOR) "." CF__STR(CF_VERSION_MINOR) "." CF__STR(
      CF_VERSION_PATCH);
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
