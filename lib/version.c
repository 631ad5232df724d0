/* The version of the library that is running (cfutures_version.h, made by
 * configure from AC_INIT). */
#include "internal.h"

#define CF__STR2(x) #x
#define CF__STR(x) CF__STR2(x)

const char *cf_version(void) {
  return CF__STR(CF_VERSION_MAJOR) "." CF__STR(CF_VERSION_MINOR) "." CF__STR(
      CF_VERSION_PATCH);
}
