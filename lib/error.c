/* Status codes as text and as names, both from CF_STATUS_MAP (cfutures.h). */
#include "internal.h"

const char *cf_strerror(int status) {
  switch (status) {
#define CF__STRERROR_CASE(name, value, text)                                 \
  case name: return text;
    CF_STATUS_MAP(CF__STRERROR_CASE)
#undef CF__STRERROR_CASE
  default: return "unknown error";
  }
}

const char *cf_err_name(int status) {
  switch (status) {
#define CF__ERR_NAME_CASE(name, value, text)                                 \
  case name: return #name;
    CF_STATUS_MAP(CF__ERR_NAME_CASE)
#undef CF__ERR_NAME_CASE
  default: return "CF_UNKNOWN";
  }
}
