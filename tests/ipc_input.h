/* One input for the wire decoders, shared by the fuzz target (fuzz_ipc.c)
 * and the corpus replay (test_ipc.c).  Byte 0 picks the decoder: even, a
 * RESULT payload; odd, a CHUNKRESULT payload for a chunk of byte 1 items
 * (at most 255).  The rest is the payload.  Returns the decoder's status,
 * which must be CF_OK or CF_EPROTO (CF_ENOMEM under memory pressure). */
#ifndef CF_IPC_INPUT_H
#define CF_IPC_INPUT_H

#include "ipc.h"

#include <stdlib.h>

static int cf_ipc_decode_input(const uint8_t *data, size_t size) {
  if (size < 2)
    return CF_EPROTO;
  if (data[0] % 2 == 0) {
    cf__result_view v;
    int rc = cf__ipc_decode_result(data + 2, size - 2, &v);
    if (rc == CF_OK && v.len) /* the view must lie inside the input */
      if (v.data < data + 2 || v.data + v.len > data + size)
        abort();
    return rc;
  }
  size_t n = data[1];
  cf__item items[256];
  for (size_t i = 0; i < n; i++)
    items[i] = (cf__item){.status = CF_ECANCELLED};
  int rc = cf__ipc_decode_chunk_result(data + 2, size - 2, n, items);
  for (size_t i = 0; i < n; i++) {
    if (rc != CF_OK && (cf__buf_len(&items[i].out) || items[i].msg))
      abort(); /* a failed decode must leave nothing behind */
    cf__buf_free(&items[i].out);
    free(items[i].msg);
  }
  return rc;
}

#endif
