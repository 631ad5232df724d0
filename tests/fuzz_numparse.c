/* libFuzzer target for primecheck's number parsing (samples/numparse.h):
 * whatever the bytes, as a token or as standard input, the parser agrees
 * with a strtoull() reference, never crashes, leaks or reads past the end.
 *   make fuzz   (needs clang), or see .ci/check-all */
#include "numparse_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int rc = numparse_check_input(data, size);
  if (rc != 0) {
    fprintf(stderr, "numparse: check %d disagrees with the reference\n", rc);
    abort();
  }
  return 0;
}
