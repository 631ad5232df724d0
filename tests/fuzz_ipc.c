/* libFuzzer target for the process pool's wire decoders, both ends: whatever
 * a worker sends (RESULT, CHUNKRESULT, READY) and whatever reaches a worker
 * (HELLO, INIT's module list, TASK, CHUNK and its input list, STOP and the
 * frame header, a fnref), decoding
 * never crashes, leaks or reads outside the message (ipc_input.h).
 *   make fuzz   (needs clang), or see .ci/check-all */
#include "ipc_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int rc = cf_ipc_decode_input(data, size);
  if (rc != CF_OK && rc != CF_EPROTO && rc != CF_ENOMEM)
    abort();
  return 0;
}
