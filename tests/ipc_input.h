/* One input for the wire decoders, shared by the fuzz target (fuzz_ipc.c)
 * and the corpus replay (test_ipc.c).  Byte 0 picks the decoder (mod 8):
 *   0  a RESULT payload (what a worker sends)
 *   1  a CHUNKRESULT payload for a chunk of byte 1 items (at most 255)
 *   2  a TASK payload (what a worker decodes)
 *   3  a CHUNK payload, its inputs walked to the end
 *   4  a frame header (24 bytes) that reaches a worker: as read_frame
 *      checks it, then as STOP while idle and while the chunk byte 1 runs
 *   5  a bare fnref
 *   6  an INIT payload (what a worker decodes first): the module list,
 *      compared with this process's modules, then the initializer's fnref;
 *      and the rest as a HELLO
 *   7  a READY payload (what the parent reads) for byte 1 modules
 * The rest is the payload.  Returns the decoder's status, which must be
 * CF_OK or CF_EPROTO (CF_ENOMEM under memory pressure); every view a
 * decoder returns must lie inside the input, or the input aborts. */
#ifndef CF_IPC_INPUT_H
#define CF_IPC_INPUT_H

#include "ipc.h"

#include <stdlib.h>
#include <string.h>

static void cf_ipc_inside(const void *p, size_t n, const uint8_t *data,
                          size_t size) {
  if (n && ((const uint8_t *)p < data ||
            (const uint8_t *)p + n > data + size || n > size))
    abort();
}

static void cf_ipc_check_fnref(const cf__fnref_view *v, const uint8_t *data,
                               size_t size) {
  if (!v->none)
    cf_ipc_inside(v->name, v->name_len, data, size);
}

static int cf_ipc_decode_input(const uint8_t *data, size_t size) {
  if (size < 2)
    return CF_EPROTO;
  const uint8_t *p = data + 2;
  size_t n = size - 2;
  switch (data[0] % 8) {
  case 0: {
    cf__result_view v;
    int rc = cf__ipc_decode_result(p, n, &v);
    if (rc == CF_OK)
      cf_ipc_inside(v.data, v.len, data, size);
    return rc;
  }
  case 1: {
    size_t k = data[1];
    cf__batch_item items[256];
    for (size_t i = 0; i < k; i++)
      items[i] = (cf__batch_item){.status = CF_ECANCELLED};
    int rc = cf__ipc_decode_chunk_result(p, n, k, items);
    for (size_t i = 0; i < k; i++) {
      if (rc != CF_OK && (cf__buf_len(&items[i].out) || items[i].msg))
        abort(); /* a failed decode must leave nothing behind */
      cf__buf_free(&items[i].out);
      free(items[i].msg);
    }
    return rc;
  }
  case 2: {
    cf__task_view v;
    int rc = cf__ipc_decode_task(p, n, &v);
    if (rc == CF_OK) {
      cf_ipc_check_fnref(&v.fn, data, size);
      cf_ipc_inside(v.in, v.len, data, size);
      if (!v.len != !v.in)
        abort();
    }
    return rc;
  }
  case 3: {
    cf__chunk_view v;
    int rc = cf__ipc_decode_chunk(p, n, &v);
    if (rc != CF_OK)
      return rc;
    cf_ipc_check_fnref(&v.fn, data, size);
    uint64_t got = 0;
    const unsigned char *in;
    size_t len;
    while ((rc = cf__ipc_chunk_next(&v, &in, &len)) == CF_OK) {
      cf_ipc_inside(in, len, data, size);
      got++;
    }
    /* A chunk that decoded walks to its end, exactly count inputs. */
    if (rc != CF_EOF || got != v.count)
      abort();
    return CF_OK;
  }
  case 4: {
    cf__frame fr;
    if (n < sizeof fr)
      return CF_EPROTO;
    memcpy(&fr, p, sizeof fr);
    /* The header checks of cf__ipc_read_frame, on bytes. */
    if (fr.magic != CF__IPC_MAGIC || fr.type < CF__MSG_INIT ||
        fr.type > CF__MSG_LAST || fr.len > CF__IPC_MAX_PAYLOAD)
      return CF_EPROTO;
    int idle = cf__ipc_decode_stop(&fr, false, 0);
    int busy = cf__ipc_decode_stop(&fr, true, data[1]);
    if ((idle != CF__STOP_IGNORE && idle != CF_EPROTO) ||
        (busy != CF__STOP_NOW && busy != CF_EPROTO) ||
        (busy == CF__STOP_NOW && (idle != CF__STOP_IGNORE ||
                                  fr.id != data[1])))
      abort();
    return busy == CF__STOP_NOW ? CF_OK : CF_EPROTO;
  }
  case 6: {
    static const unsigned char secret[CF__SECRET_LEN] = {1, 2, 3};
    if (cf__hello_check(p, n, secret) && n != CF__HELLO_SIZE)
      abort();
    static cf__modules mine; /* this process's, listed once */
    if (!mine.m && cf__modules_collect(&mine) != CF_OK)
      return CF_ENOMEM;
    size_t used = 0;
    cf__module_view *views = NULL;
    uint32_t count = 0;
    int rc = cf__modules_decode(p, n, &used, &views, &count);
    if (rc != CF_OK)
      return rc;
    if (used > n)
      abort();
    uint32_t *bad = malloc((count ? count : 1) * sizeof *bad);
    if (!bad) {
      free(views);
      return CF_ENOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
      cf_ipc_inside(views[i].name, views[i].name_len, data, size);
      cf_ipc_inside(views[i].id, views[i].idlen, data, size);
    }
    if (cf__modules_compare(views, count, &mine, bad) > count)
      abort();
    free(bad);
    free(views);
    cf__fnref_view v;
    size_t fu = cf__ipc_decode_fnref(p + used, n - used, &v);
    if (fu > n - used)
      abort();
    if (fu)
      cf_ipc_check_fnref(&v, data, size);
    return fu ? CF_OK : CF_EPROTO;
  }
  case 7:
    return cf__ipc_decode_ready(p, n, data[1]);
  default: {
    cf__fnref_view v;
    size_t used = cf__ipc_decode_fnref(p, n, &v);
    if (used > n)
      abort();
    if (used)
      cf_ipc_check_fnref(&v, data, size);
    return used ? CF_OK : CF_EPROTO;
  }
  }
}

#endif
