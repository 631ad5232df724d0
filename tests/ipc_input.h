/* One input for the wire decoders, shared by the fuzz target (fuzz_ipc.c)
 * and the corpus replay (test_ipc.c).  Byte 0 picks the decoder (mod 9):
 *   0  a RESULT payload (what a worker sends)
 *   1  a CHUNKRESULT payload for a chunk of byte 1 items (at most 255)
 *   2  a TASK payload (what a worker decodes)
 *   3  a CHUNK payload, its inputs walked to the end
 *   4  a frame header (24 bytes) that reaches a worker: as read_frame
 *      checks it, then as STOP while idle and while the chunk byte 1 runs,
 *      and as EXIT
 *   5  a bare fnref
 *   6  an INIT payload (what a worker decodes first): the module list,
 *      compared with this process's modules, the initializer's fnref and
 *      its argument; and the whole as a HELLO
 *   7  a READY payload (what the parent reads) for byte 1 modules
 *   8  an INITFAIL payload (what the parent reads) for byte 1 modules
 * Every decoder of ipc.h is reached: the parent's (RESULT, CHUNKRESULT,
 * READY, INITFAIL) and the worker's (HELLO, INIT and its module list, TASK,
 * CHUNK, STOP, EXIT, fnref).  The rest is the payload.  Returns the
 * decoder's status, which must be CF_OK or CF_EPROTO (CF_ENOMEM under
 * memory pressure); every view a decoder returns must lie inside the
 * input, or the input aborts. */
#ifndef CF_IPC_INPUT_H
#define CF_IPC_INPUT_H

#include "ipc.h"

#include <stdlib.h>
#include <string.h>

static void cf_ipc_inside(const void *p, size_t n, const uint8_t *data,
                          size_t size) {
  if (n && ((const uint8_t *)p < data || (const uint8_t *)p + n > data + size ||
            n > size))
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
  switch (data[0] % 9) {
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
    int ex = cf__ipc_decode_exit(&fr);
    if ((idle != CF__STOP_IGNORE && idle != CF_EPROTO) ||
        (busy != CF__STOP_NOW && busy != CF_EPROTO) ||
        (busy == CF__STOP_NOW &&
         (idle != CF__STOP_IGNORE || fr.id != data[1])) ||
        (ex != CF_OK && ex != CF_EPROTO) ||
        (ex == CF_OK && (idle != CF_EPROTO || fr.len)))
      abort();
    return busy == CF__STOP_NOW || ex == CF_OK ? CF_OK : CF_EPROTO;
  }
  case 6: {
    static const unsigned char secret[CF__SECRET_LEN] = {1, 2, 3};
    if (cf__hello_check(p, n, secret) && n != CF__HELLO_SIZE)
      abort();
    static cf__modules mine; /* this process's, listed once */
    if (!mine.m && cf__modules_collect(&mine) != CF_OK)
      return CF_ENOMEM;
    cf__init_view v;
    int rc = cf__ipc_decode_init(p, n, &v);
    if (rc != CF_OK) {
      if (v.mods || v.nmods) /* a refused INIT leaves nothing behind */
        abort();
      return rc;
    }
    uint32_t *bad = malloc((v.nmods ? v.nmods : 1) * sizeof *bad);
    if (!bad) {
      free(v.mods);
      return CF_ENOMEM;
    }
    for (uint32_t i = 0; i < v.nmods; i++) {
      cf_ipc_inside(v.mods[i].name, v.mods[i].name_len, data, size);
      cf_ipc_inside(v.mods[i].id, v.mods[i].idlen, data, size);
    }
    if (cf__modules_compare(v.mods, v.nmods, &mine, bad) > v.nmods)
      abort();
    free(bad);
    free(v.mods);
    cf_ipc_check_fnref(&v.fn, data, size);
    cf_ipc_inside(v.arg, v.arg_len, data, size);
    if (!v.arg != !v.arg_len ||
        (v.arg && v.arg + v.arg_len != p + n)) /* the argument ends it */
      abort();
    return CF_OK;
  }
  case 7: {
    int rc = cf__ipc_decode_ready(p, n, data[1]);
    /* What the parent then reads: indexes in range, ascending. */
    for (size_t i = 0; rc == CF_OK && i < n / 4; i++)
      if (cf__ipc_ready_index(p, i) >= data[1] ||
          (i && cf__ipc_ready_index(p, i) <= cf__ipc_ready_index(p, i - 1)))
        abort();
    return rc;
  }
  case 8: {
    int32_t code;
    uint32_t mod;
    int rc = cf__ipc_decode_initfail(p, n, data[1], &code, &mod);
    if (rc == CF_OK && (code == 0 || (mod != UINT32_MAX && mod >= data[1])))
      abort();
    return rc;
  }
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
