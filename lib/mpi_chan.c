/*
 * Frames (ipc.h) over MPI: the channel of the MPI backend's root and
 * ranks.  See mpi_common.h for how a frame maps to messages.
 */
#include "alloc.h"
#include "mpi_common.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

size_t cf__mpi_piece = CF__MPI_PIECE;
#ifdef CF_MPI_TEST_HOOKS
int cf__mpi_fail_peer = -1;
#endif

const char *cf__mpi_error_string(int err, char *buf, size_t cap) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, s, &len) != MPI_SUCCESS)
    len = snprintf(s, sizeof s, "MPI error %d", err);
  snprintf(buf, cap, "%.*s", len, s);
  return buf;
}

/* ---- sending ------------------------------------------------------------- */

static int cf__mpi_send(const cf__mpi_link *l, const void *p, size_t n) {
#ifdef CF_MPI_TEST_HOOKS
  if (l->peer == cf__mpi_fail_peer)
    return CF_ESYS;
#endif
  return MPI_Send(p, (int)n, MPI_BYTE, l->peer, CF__MPI_TAG, l->comm) ==
                 MPI_SUCCESS
             ? CF_OK
             : CF_ESYS;
}

void cf__mpi_link_init(cf__mpi_link *l, MPI_Comm comm, int peer, bool async) {
  *l = (cf__mpi_link){.comm = comm, .peer = peer, .async = async};
}

void cf__mpi_link_reap(cf__mpi_link *l, bool all) {
  int k = 0;
  for (int i = 0; i < l->nreq; i++) {
    int done = 0;
    if (all)
      MPI_Wait(&l->req[i], MPI_STATUS_IGNORE), done = 1;
    else if (MPI_Test(&l->req[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      done = 1; /* failed: its buffer is MPI's no more */
    if (done) {
      free(l->buf[i]);
      continue;
    }
    l->req[k] = l->req[i];
    l->buf[k++] = l->buf[i];
  }
  l->nreq = k;
}

/* An owned copy of a frame, sent without waiting. */
static int cf__mpi_isend(cf__mpi_link *l, unsigned char *b, size_t n) {
#ifdef CF_MPI_TEST_HOOKS
  if (l->peer == cf__mpi_fail_peer) {
    free(b);
    return CF_ESYS;
  }
#endif
  cf__mpi_link_reap(l, false);
  if (l->nreq == CF__MPI_ASYNC_MAX) { /* wait for the oldest */
    MPI_Wait(&l->req[0], MPI_STATUS_IGNORE);
    free(l->buf[0]);
    memmove(l->req, l->req + 1, (size_t)(l->nreq - 1) * sizeof *l->req);
    memmove(l->buf, l->buf + 1, (size_t)(l->nreq - 1) * sizeof *l->buf);
    l->nreq--;
  }
  if (MPI_Isend(b, (int)n, MPI_BYTE, l->peer, CF__MPI_TAG, l->comm,
                &l->req[l->nreq]) != MPI_SUCCESS) {
    free(b);
    return CF_ESYS;
  }
  l->buf[l->nreq++] = b;
  return CF_OK;
}

/* The header, then every iovec in pieces of at most cf__mpi_piece. */
static int cf__mpi_send_pieces(cf__mpi_link *l, const struct iovec *v,
                               size_t nv) {
  cf__mpi_link_reap(l, true); /* in order after what is outstanding */
  int rc = cf__mpi_send(l, v[0].iov_base, v[0].iov_len);
  size_t piece = cf__mpi_piece < INT_MAX ? cf__mpi_piece : INT_MAX;
  for (size_t i = 1; rc == CF_OK && i < nv; i++) {
    const unsigned char *p = v[i].iov_base;
    for (size_t off = 0; rc == CF_OK && off < v[i].iov_len; off += piece) {
      size_t n = v[i].iov_len - off < piece ? v[i].iov_len - off : piece;
      rc = cf__mpi_send(l, p + off, n);
    }
  }
  return rc;
}

/* gcc cannot see that every byte of `small` sent was written first. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static int cf__mpi_writev(cf__chan *ch, struct iovec *v, size_t nv) {
  cf__mpi_link *l = ch->ctx;
  size_t total = 0;
  for (size_t i = 0; i < nv; i++)
    total += v[i].iov_len;
  if (total > CF__MPI_PACK_MAX || total - v[0].iov_len > cf__mpi_piece)
    return cf__mpi_send_pieces(l, v, nv);
  unsigned char small[4096];
  unsigned char *b = total <= sizeof small && !l->async ? small
                                                        : cf__malloc(total);
  if (!b)
    return CF_ENOMEM;
  size_t off = 0;
  for (size_t i = 0; i < nv; i++) {
    if (v[i].iov_len)
      memcpy(b + off, v[i].iov_base, v[i].iov_len);
    off += v[i].iov_len;
  }
  if (l->async)
    return cf__mpi_isend(l, b, total); /* takes b */
  int rc = cf__mpi_send(l, b, total);
  if (b != small)
    free(b);
  return rc;
}
#pragma GCC diagnostic pop

/* ---- receiving ----------------------------------------------------------- */

int cf__mpi_probe(MPI_Comm comm, int src, int *from, int *count) {
  int flag = 0;
  MPI_Status st;
  if (MPI_Iprobe(src, CF__MPI_TAG, comm, &flag, &st) != MPI_SUCCESS)
    return CF_ESYS;
  if (!flag)
    return 0;
  *from = st.MPI_SOURCE;
  if (MPI_Get_count(&st, MPI_BYTE, count) != MPI_SUCCESS ||
      *count == MPI_UNDEFINED)
    return CF_ESYS;
  return 1;
}

static int cf__mpi_recv_into(MPI_Comm comm, int from, void *p, size_t cap,
                             int *got) {
  MPI_Status st;
  int n = cap < INT_MAX ? (int)cap : INT_MAX;
  if (MPI_Recv(p, n, MPI_BYTE, from, CF__MPI_TAG, comm, &st) != MPI_SUCCESS ||
      MPI_Get_count(&st, MPI_BYTE, got) != MPI_SUCCESS)
    return CF_ESYS; /* also a message larger than cap: MPI_ERR_TRUNCATE */
  /* A message sent by rendezvous (above the MPI's eager size) leaves its
   * sender blocked in MPI_Send until this side acknowledges it, which
   * some MPIs (MPICH over UCX) do only in their next progress call: make
   * one now, before a task runs here for who knows how long. */
  int flag;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &flag, MPI_STATUS_IGNORE);
  return CF_OK;
}

/* The payload of a frame whose header came alone: pieces until len. */
static int cf__mpi_recv_pieces(MPI_Comm comm, int from, size_t len,
                               unsigned char **payload) {
  unsigned char *buf = cf__malloc(len);
  if (!buf)
    return CF_ENOMEM; /* the pieces stay queued: the caller gives up */
  for (size_t got = 0; got < len;) {
    int n;
    int rc = cf__mpi_recv_into(comm, from, buf + got, len - got, &n);
    if (rc == CF_OK && n <= 0)
      rc = CF_EPROTO; /* an empty piece is never sent */
    if (rc != CF_OK) {
      free(buf);
      return rc;
    }
    got += (size_t)n;
  }
  *payload = buf;
  return CF_OK;
}

int cf__mpi_recv(MPI_Comm comm, int from, int count, cf__frame *fr,
                 unsigned char **payload) {
  *payload = NULL;
  int n;
  if (count <= (int)sizeof *fr) { /* a header alone, or garbage */
    int rc = cf__mpi_recv_into(comm, from, fr, sizeof *fr, &n);
    if (rc != CF_OK)
      return rc;
    if (n != (int)sizeof *fr || !cf__ipc_frame_ok(fr))
      return CF_EPROTO;
    return fr->len ? cf__mpi_recv_pieces(comm, from, (size_t)fr->len, payload)
                   : CF_OK;
  }
  unsigned char *buf = cf__malloc((size_t)count);
  if (!buf)
    return CF_ENOMEM;
  int rc = cf__mpi_recv_into(comm, from, buf, (size_t)count, &n);
  if (rc == CF_OK) {
    memcpy(fr, buf, sizeof *fr);
    if (n != count || !cf__ipc_frame_ok(fr) ||
        fr->len != (uint64_t)count - sizeof *fr)
      rc = CF_EPROTO;
  }
  if (rc != CF_OK) {
    free(buf);
    return rc;
  }
  memmove(buf, buf + sizeof *fr, (size_t)fr->len);
  *payload = buf;
  return CF_OK;
}

unsigned long cf__mpi_precise_naps(void) {
  int old = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  return old > 0 ? (unsigned long)old : 0;
}

void cf__mpi_restore_naps(unsigned long slack) {
  if (slack)
    prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
}

void cf__mpi_wait_reset(cf__mpi_wait *w) {
  w->since = cf__now_ns();
  w->nap = CF__MPI_NAP_SHORT_NS;
}

int64_t cf__mpi_wait_next(cf__mpi_wait *w) {
  int64_t quiet = cf__now_ns() - w->since;
  if (quiet < CF__MPI_SPIN_NS)
    return 0;
  if (quiet < CF__MPI_SHORT_FOR_NS)
    return CF__MPI_NAP_SHORT_NS;
  int64_t max = quiet < CF__MPI_DOZE_AFTER_NS ? CF__MPI_NAP_MAX_NS
                                              : CF__MPI_NAP_DOZE_NS;
  w->nap = w->nap * 2 > max ? max : w->nap * 2;
  return w->nap;
}

void cf__mpi_wait_pause(cf__mpi_wait *w) {
  int64_t ns = cf__mpi_wait_next(w);
  if (ns == 0) {
    sched_yield();
    return;
  }
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  nanosleep(&ts, NULL); /* EINTR: a shorter nap, which is fine */
}

/* ---- the channel to one peer ------------------------------------------- */

static int cf__mpi_ready(cf__chan *ch) {
  const cf__mpi_link *l = ch->ctx;
  int from, count;
  return cf__mpi_probe(l->comm, l->peer, &from, &count);
}

/* Waits as mpi_common.h says (cf__mpi_wait). */
static int cf__mpi_chan_recv(cf__chan *ch, cf__frame *fr,
                             unsigned char **payload) {
  const cf__mpi_link *l = ch->ctx;
  cf__mpi_wait w;
  cf__mpi_wait_reset(&w);
  for (;;) {
    int from, count;
    int r = cf__mpi_probe(l->comm, l->peer, &from, &count);
    if (r < 0)
      return r;
    if (r == 1)
      return cf__mpi_recv(l->comm, from, count, fr, payload);
    cf__mpi_wait_pause(&w);
  }
}

static const cf__chan_ops cf__mpi_chan_ops = {
    .writev = cf__mpi_writev,
    .ready = cf__mpi_ready,
    .recv = cf__mpi_chan_recv,
};

void cf__mpi_chan_init(cf__chan *ch, cf__mpi_link *link) {
  ch->fd = -1;
  ch->ops = &cf__mpi_chan_ops;
  ch->ctx = link;
}
