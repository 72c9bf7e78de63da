/*
 * The benchmark's native ICAP client and trivial responder: one thread, epoll, no allocation per
 * request. Built on demand by bench/lib/native-tools.ts (cc -O2); driven by bench/run.ts
 * (--generator native, the default) and the --ceiling runs.
 *
 * Why native: on this 2-core machine the client shares the CPU with the server it measures. The
 * Node.js generator (bench/loadgen.ts) spends ~12 µs of CPU per small request and its event loop
 * saturates against c-icap (ELU 0.96-1.0), so it held c-icap's rate and latency down, and against
 * its own trivial responder it could not reach 2x the rates it measured. This client spends
 * 6-10 µs per small request (more when it reads an echoed body), about 90 % of it the kernel's
 * loopback TCP (BENCHMARKS.md, Sessions 16 and 25).
 *
 *   icap-native load --host H --port P --request FILE [--rest FILE] --connections N
 *                    --duration S --warmup S [--timeout-ms T] [--rate R]
 *     Closed loop: N connections, each sending FILE, waiting for the final answer, sending again.
 *     With --rate, an open loop: R requests per second in all, on a fixed schedule, each on a free
 *     connection (one request at a time on each); a request due while every connection waits for
 *     an answer is sent when one is free, and its latency is also counted from when it was due
 *     (latencyFromDueMs, sendLagMs). It compares servers at the same load, below their limits.
 *     With --rest the request has a preview: FILE is the head and preview, REST is sent after
 *     "100 Continue" (a final answer to the preview ends the transaction instead). Prints one JSON
 *     object (see bench/lib/native-tools.ts, NativeLoadOutput).
 *   icap-native respond --port P
 *     Answers every request with a fixed 204 (200 for OPTIONS), a preview with 100 Continue first
 *     unless it ends in ieof. Prints "listening" once bound.
 *
 * Latency is measured as bench/loadgen.ts measures it: from the write of a request to the start
 * of the epoll turn whose read completed its final answer. Only requests sent inside the window
 * count; in an open loop, only requests *due* inside it (a request due in the warm-up and sent late,
 * after a stall, belongs to the warm-up), so the window never holds more than its schedule.
 * Framing follows RFC 3507 §4.4.1 (Encapsulated) and HTTP/1.1 chunked coding (§4.5 for ieof);
 * anything malformed is counted as a framing error and the connection is closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 65536
#define READ_BYTES 262144

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- ICAP message framing (requests and responses alike) ------------------------------------ */

enum frame_state { F_HEAD, F_SKIP, F_CHUNK_SIZE, F_CHUNK_EXT, F_CHUNK_DATA, F_CHUNK_CRLF, F_TRAILER };

typedef struct {
  enum frame_state state;
  char head[HEAD_MAX];
  size_t head_len;
  uint64_t skip;     /* encapsulated header bytes (F_SKIP) or chunk bytes (F_CHUNK_DATA) left */
  int body_follows;  /* after F_SKIP: a chunked body (req-body, res-body, opt-body) or nothing */
  uint64_t chunk;    /* chunk size being read */
  int size_digits;
  int ieof;          /* the last chunk carried "; ieof" (RFC 3507 §4.5) */
  uint32_t ext_tail; /* the last four bytes of a chunk extension, to spot "ieof" */
  int line_len;      /* trailer: bytes on the current line; chunk CRLF: bytes of it seen */
  /* What the head said: valid from a message's completion until the next head is parsed. */
  int status;        /* responses: the status code; requests: 0 */
  int options;       /* requests: the method was OPTIONS */
  int preview;       /* requests: a Preview header was present */
} framer_t;

/* Case-insensitive search for header `name` ("Encapsulated:") at a line start within the head. */
static const char *find_header(const char *head, size_t len, const char *name) {
  size_t n = strlen(name);
  const char *end = head + len;
  for (const char *line = head; (size_t)(end - line) >= n;) {
    if (strncasecmp(line, name, n) == 0) return line + n;
    const char *lf = memchr(line, '\n', (size_t)(end - line));
    if (lf == NULL) break;
    line = lf + 1;
  }
  return NULL;
}

/* The head is complete (ends in CRLF CRLF): read its start line and Encapsulated. 0 or -1 (malformed). */
static int parse_head(framer_t *f) {
  char *h = f->head;
  size_t len = f->head_len;
  f->status = 0;
  f->options = 0;
  f->preview = 0;
  if (len >= 12 && memcmp(h, "ICAP/1.0 ", 9) == 0) {
    f->status = atoi(h + 9);
    if (f->status < 100 || f->status > 999) return -1;
  } else {
    f->options = len >= 8 && memcmp(h, "OPTIONS ", 8) == 0;
    f->preview = find_header(h, len, "Preview:") != NULL;
  }
  f->skip = 0;
  f->body_follows = 0;
  const char *enc = find_header(h, len, "Encapsulated:");
  if (enc == NULL) return 0; /* e.g. 100 Continue: the head is the whole message */
  /* "req-hdr=0, req-body=123": the last entry's offset is where the body (or nothing) starts. */
  const char *end = memchr(enc, '\r', (size_t)(h + len - enc));
  if (end == NULL) return -1;
  const char *last = NULL;
  for (const char *p = enc; p < end; p++)
    if (*p == '=') last = p;
  if (last == NULL) return -1;
  const char *name = last;
  while (name > enc && name[-1] != ' ' && name[-1] != ',' && name[-1] != ':') name--;
  f->skip = strtoull(last + 1, NULL, 10);
  f->body_follows = strncmp(name, "null-body", 9) != 0;
  return 0;
}

static void start_chunks(framer_t *f) {
  f->state = F_CHUNK_SIZE;
  f->chunk = 0;
  f->size_digits = 0;
}

/*
 * Feeds bytes; returns how many were used up to and including the end of one complete message
 * (*done = 1; its status, options, preview and ieof are then in *f), all of them when the message
 * is not complete yet (*done = 0), or -1 on a framing error.
 */
static ssize_t frame(framer_t *f, const char *b, size_t n, int *done) {
  size_t i = 0;
  *done = 0;
  while (i < n) {
    char c = b[i];
    switch (f->state) {
      case F_HEAD: {
        /* A line at a time: a byte-by-byte copy and test was the generator's largest user-space cost
           (perf, Session 25). The head ends at the LF of CRLF CRLF. */
        const char *lf = memchr(b + i, '\n', n - i);
        size_t take = lf == NULL ? n - i : (size_t)(lf - (b + i)) + 1;
        if (take > HEAD_MAX - f->head_len) return -1;
        memcpy(f->head + f->head_len, b + i, take);
        f->head_len += take;
        i += take;
        if (lf != NULL && f->head_len >= 4 && memcmp(f->head + f->head_len - 4, "\r\n\r\n", 4) == 0) {
          if (parse_head(f) != 0) return -1;
          f->ieof = 0;
          if (f->skip > 0) f->state = F_SKIP;
          else if (f->body_follows) start_chunks(f);
          else goto complete;
        }
        break;
      }
      case F_SKIP: {
        size_t take = n - i < f->skip ? n - i : (size_t)f->skip;
        i += take;
        f->skip -= take;
        if (f->skip == 0) {
          if (!f->body_follows) goto complete;
          start_chunks(f);
        }
        break;
      }
      case F_CHUNK_SIZE:
        i++;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
          if (++f->size_digits > 15) return -1;
          f->chunk = f->chunk * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        } else if (c == ';' || c == ' ') {
          if (f->size_digits == 0) return -1;
          f->state = F_CHUNK_EXT;
          f->ext_tail = 0;
        } else if (c == '\r') {
          /* wait for LF */
        } else if (c == '\n') {
          if (f->size_digits == 0) return -1;
          goto chunk_line_done;
        } else {
          return -1;
        }
        break;
      case F_CHUNK_EXT:
        /* "; ieof" (RFC 3507 §4.5) is the only extension that matters here. */
        i++;
        if (c == '\n') goto chunk_line_done;
        f->ext_tail = f->ext_tail << 8 | (uint8_t)c;
        if (f->ext_tail == ((uint32_t)'i' << 24 | (uint32_t)'e' << 16 | (uint32_t)'o' << 8 | 'f')) f->ieof = 1;
        break;
      chunk_line_done:
        if (f->chunk == 0) {
          f->state = F_TRAILER;
          f->line_len = 0;
        } else {
          f->state = F_CHUNK_DATA;
          f->skip = f->chunk;
        }
        break;
      case F_CHUNK_DATA: {
        size_t take = n - i < f->skip ? n - i : (size_t)f->skip;
        i += take;
        f->skip -= take;
        if (f->skip == 0) f->state = F_CHUNK_CRLF, f->line_len = 0;
        break;
      }
      case F_CHUNK_CRLF:
        i++;
        if (f->line_len == 0 && c == '\r') f->line_len = 1;
        else if (f->line_len == 1 && c == '\n') start_chunks(f);
        else return -1;
        break;
      case F_TRAILER:
        /* Trailer lines until an empty one. */
        i++;
        if (c == '\n') {
          if (f->line_len == 0) goto complete;
          f->line_len = 0;
        } else if (c != '\r') {
          f->line_len++;
        }
        break;
    }
    continue;
  complete:
    f->state = F_HEAD;
    f->head_len = 0;
    *done = 1;
    return (ssize_t)i;
  }
  return (ssize_t)i;
}

/* Requests after a preview continue with chunks, not a new head (RFC 3507 §4.5). */
static void expect_more_chunks(framer_t *f) {
  start_chunks(f);
  f->ieof = 0;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  struct stat st;
  if (fstat(fileno(fp), &st) != 0) return NULL;
  char *b = malloc((size_t)st.st_size + 1);
  *len = fread(b, 1, (size_t)st.st_size, fp);
  fclose(fp);
  return b;
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

static void set_nonblocking_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- load: the closed-loop client ------------------------------------------------------------- */

typedef struct {
  int fd;
  framer_t in;
  const char *out;      /* what is being written: the request, or the rest after 100 Continue */
  size_t out_len, out_at;
  int waiting_continue; /* the preview was sent; 100 Continue sends the rest */
  int measured;         /* this request counts: sent inside the window (open loop: due inside it) */
  double intended;      /* when it was due: its send time, or its slot in --rate's schedule */
  double sent;          /* when its first byte was written */
  double last_turn;     /* when the previous answer's turn started (cycle) */
  int busy;             /* a request is in flight on it */
  int closed;
} client_t;

typedef struct {
  float *v;
  size_t n, cap;
} samples_t;

static void add(samples_t *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1 << 16;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = (float)x;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static size_t rank(double q, size_t n) {
  double r = q * (double)n;
  size_t k = (size_t)r;
  if ((double)k < r) k++;
  return k < 1 ? 1 : k > n ? n : k;
}

static void print_summary(const char *name, samples_t *s) {
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += s->v[i];
  qsort(s->v, s->n, sizeof *s->v, cmp_float);
  /* Nearest rank, as bench/lib/stats.ts percentile() takes it: the ceil(q * n)-th smallest. */
#define Q(q) (s->n ? s->v[rank((q), s->n) - 1] : 0.0)
  printf("\"%s\":{\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"max\":%.4f,\"mean\":%.4f}", name, Q(0.5), Q(0.9), Q(0.99),
         s->n ? s->v[s->n - 1] : 0.0, s->n ? sum / (double)s->n : 0.0);
#undef Q
}

/* Writes what is left of the client's output; 0 done, 1 would block (EPOLLOUT armed), -1 error. */
static int pump(int ep, client_t *c, uint32_t id, uint64_t *bytes_sent) {
  while (c->out_at < c->out_len) {
    ssize_t w = write(c->fd, c->out + c->out_at, c->out_len - c->out_at);
    if (w > 0) {
      c->out_at += (size_t)w;
      *bytes_sent += (uint64_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = id};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      return 1;
    }
    return -1;
  }
  return 0;
}

/* The load's state: the clients, the schedule, and what is counted. One run per process. */
typedef struct {
  int ep;
  client_t *cl;
  const char *req, *rest;
  size_t req_len, rest_len;
  /* --rate: the open loop's schedule. Request k is due at sched_start + k * period_ms; a request
   * waits for a free connection (one request at a time on each). lat counts from the write, as in
   * the closed loop; lat_due from when the request was due, so a server that falls behind pays
   * for the backlog it causes (no coordinated omission); lag is the wait between the two.
   * Closed loop (rate 0): each connection sends again as soon as it has its answer. */
  double period_ms, sched_start;
  /* The open loop's measured requests: those due in [due_from, due_until), the window as scheduled. */
  double due_from, due_until;
  uint64_t scheduled;
  int *free_ids, free_n;
  samples_t lat, lat_due, queue, cycle, lag;
  uint64_t statuses[1000];
  uint64_t requests, ok, err_status, err_socket, err_timeout, err_framing;
  uint64_t bytes_sent, bytes_recv, in_flight;
  int measuring, sending, open;
  char first_error[200];
} load_t;

static void note_error(load_t *L, const char *what) {
  if (!L->first_error[0]) snprintf(L->first_error, sizeof L->first_error, "%s", what);
}

/* A broken connection is not reopened: it is reported, and the run goes on with the others. */
static void drop_client(load_t *L, client_t *c) {
  epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->closed = 1;
  if (c->busy) L->in_flight--;
  c->busy = 0;
  L->open--;
}

/* Sends a new request on client `id`, due at `intended`; 0, or -1 when the socket failed (dropped). */
static int start_request(load_t *L, uint32_t id, double intended) {
  client_t *c = &L->cl[id];
  c->out = L->req, c->out_len = L->req_len, c->out_at = 0;
  c->waiting_continue = L->rest != NULL;
  c->sent = now_ms();
  c->intended = intended > 0 ? intended : c->sent;
  c->measured = L->period_ms > 0 ? c->intended >= L->due_from && c->intended < L->due_until : L->measuring;
  if (c->measured && L->period_ms > 0) add(&L->lag, c->sent - c->intended);
  L->in_flight++;
  c->busy = 1;
  if (pump(L->ep, c, id, &L->bytes_sent) >= 0) return 0;
  if (c->measured && L->sending) L->err_socket++;
  char why[160];
  snprintf(why, sizeof why, "socket: %s", strerror(errno));
  note_error(L, why);
  drop_client(L, c);
  return -1;
}

/* Open loop: starts every request that is due on the free connections. */
static void send_due(load_t *L) {
  double t = now_ms();
  while (L->sending && L->free_n > 0) {
    double due = L->sched_start + (double)L->scheduled * L->period_ms;
    if (due > t) return;
    const int id = L->free_ids[--L->free_n];
    if (L->cl[id].closed) continue; /* the server closed it while it was free */
    L->scheduled++;
    start_request(L, (uint32_t)id, due);
  }
}

/* How long epoll may sleep: until the next request is due (open loop, a connection free), else 50 ms. */
static struct timespec wait_for(load_t *L) {
  double ms = 50;
  if (L->period_ms > 0 && L->sending && L->free_n > 0) {
    ms = L->sched_start + (double)L->scheduled * L->period_ms - now_ms();
    if (ms < 0) ms = 0;
    if (ms > 50) ms = 50;
  }
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(ms * 1e6)};
  return ts;
}

static int run_load(int argc, char **argv) {
  const char *host = arg(argc, argv, "--host", "127.0.0.1");
  int port = atoi(arg(argc, argv, "--port", "1344"));
  const char *req_path = arg(argc, argv, "--request", NULL);
  const char *rest_path = arg(argc, argv, "--rest", NULL);
  int conns = atoi(arg(argc, argv, "--connections", "1"));
  double duration = atof(arg(argc, argv, "--duration", "5"));
  double warmup = atof(arg(argc, argv, "--warmup", "1"));
  double timeout_ms = atof(arg(argc, argv, "--timeout-ms", "30000"));
  double rate = atof(arg(argc, argv, "--rate", "0"));
  if (req_path == NULL || conns < 1 || conns > 4096 || duration <= 0 || rate < 0 || rate > 1e7) {
    fprintf(stderr, "icap-native load: --request FILE, --connections 1..4096, --duration > 0 and --rate 0..1e7 are required\n");
    return 2;
  }
  static load_t L;
  L.req = read_file(req_path, &L.req_len);
  L.rest = rest_path ? read_file(rest_path, &L.rest_len) : NULL;
  if (L.req == NULL || (rest_path && L.rest == NULL)) {
    fprintf(stderr, "icap-native load: cannot read the request files\n");
    return 2;
  }
  /* An open loop's sends are timed by epoll's timeout: the kernel's default slack (50 µs) would
   * move each by up to that much. */
  if (rate > 0) prctl(PR_SET_TIMERSLACK, 1000UL);

  L.ep = epoll_create1(0);
  L.cl = calloc((size_t)conns, sizeof *L.cl);
  L.free_ids = calloc((size_t)conns, sizeof *L.free_ids);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "icap-native load: --host must be an IPv4 address\n");
    return 2;
  }
  for (int i = 0; i < conns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      fprintf(stderr, "icap-native load: connect %s:%d: %s\n", host, port, strerror(errno));
      return 1;
    }
    set_nonblocking_nodelay(fd);
    L.cl[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(L.ep, EPOLL_CTL_ADD, fd, &ev);
  }

  double t_start = now_ms();
  double w_start = t_start + warmup * 1e3, w_end = w_start + duration * 1e3, hard_end = w_end + 5000;
  L.sending = 1, L.open = conns;
  struct rusage ru0 = {0}, ru1 = {0};
  double idle_ms = 0, measured_until = 0;

  if (warmup <= 0) {
    /* No warm-up: the first requests are measured too. */
    L.measuring = 1;
    getrusage(RUSAGE_SELF, &ru0);
  }
  if (rate > 0) {
    L.period_ms = 1e3 / rate;
    L.sched_start = t_start;
    L.due_from = w_start, L.due_until = w_end;
    for (int i = conns - 1; i >= 0; i--) L.free_ids[L.free_n++] = i;
    send_due(&L);
  } else {
    for (int i = 0; i < conns; i++) {
      if (start_request(&L, (uint32_t)i, 0) < 0) {
        fprintf(stderr, "icap-native load: %s\n", L.first_error);
        return 1;
      }
    }
  }
  for (int i = 0; i < conns; i++) L.cl[i].last_turn = t_start;

  static char buf[READ_BYTES];
  struct epoll_event evs[512];
  for (;;) {
    double before = now_ms();
    struct timespec timeout = wait_for(&L);
    int k = epoll_pwait2(L.ep, evs, 512, &timeout, NULL);
    double turn = now_ms();
    if (L.measuring && L.sending) idle_ms += turn - before;
    if (!L.measuring && turn >= w_start) {
      L.measuring = 1;
      w_start = turn;
      getrusage(RUSAGE_SELF, &ru0);
    }
    if (L.sending && turn >= w_end) {
      /* The window closes: no new requests; the ones in flight may finish (not counted). */
      L.sending = 0;
      measured_until = turn;
      getrusage(RUSAGE_SELF, &ru1);
    }
    if (!L.sending && (L.in_flight == 0 || turn >= hard_end)) break;
    if (L.open == 0) break;
    for (int e = 0; e < k; e++) {
      uint32_t id = evs[e].data.u32;
      client_t *c = &L.cl[id];
      if (c->closed) continue;
      ssize_t got = -1;
      if (evs[e].events & EPOLLOUT) {
        int r = pump(L.ep, c, id, &L.bytes_sent);
        if (r == 0) {
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
          epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev);
        } else if (r < 0) {
          goto socket_error;
        }
      }
      if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      got = read(c->fd, buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) goto socket_error;
      if (got < 0) continue;
      if (L.measuring && L.sending) L.bytes_recv += (uint64_t)got;
      for (ssize_t at = 0; at < got;) {
        int done = 0;
        ssize_t used = frame(&c->in, buf + at, (size_t)(got - at), &done);
        const int status = c->in.status;
        /* An answer must start "ICAP/1.0 NNN" (status 0: it did not). */
        if (used < 0 || (done && status == 0)) {
          if (c->measured && L.sending) L.err_framing++;
          note_error(&L, "framing error from the server");
          goto close_client;
        }
        at += used;
        if (!done) break;
        if (status == 100 && c->waiting_continue) {
          /* RFC 3507 §4.5: the server wants the rest of the body. */
          c->waiting_continue = 0;
          c->out = L.rest, c->out_len = L.rest_len, c->out_at = 0;
          if (pump(L.ep, c, id, &L.bytes_sent) < 0) goto socket_error;
          continue;
        }
        /* A final answer. */
        L.in_flight--;
        c->busy = 0;
        if (c->measured && L.sending) {
          L.requests++;
          L.statuses[status]++; /* 100..999: parse_head checked it */
          if (status >= 200 && status < 300) {
            L.ok++;
            add(&L.lat, turn - c->sent);
            if (L.period_ms > 0) add(&L.lat_due, turn - c->intended);
            add(&L.queue, now_ms() - turn);
            if (L.period_ms == 0) add(&L.cycle, turn - c->last_turn); /* open loop: a connection idles between requests */
          } else {
            L.err_status++;
            char why[32];
            snprintf(why, sizeof why, "status %d", status);
            note_error(&L, why);
          }
        }
        c->last_turn = turn;
        if (!L.sending) continue;
        if (L.period_ms > 0) {
          L.free_ids[L.free_n++] = (int)id;
        } else if (start_request(&L, id, 0) < 0) {
          goto next_event;
        }
      }
      continue;
    socket_error:
      if (c->measured && L.sending) L.err_socket++;
      {
        char why[160];
        snprintf(why, sizeof why, "socket: %s", got == 0 ? "closed by the server" : strerror(errno));
        note_error(&L, why);
      }
    close_client:
      drop_client(&L, c);
    next_event:;
    }
    if (L.period_ms > 0) send_due(&L);
    /* A request unanswered for too long is a timeout; its connection is closed. */
    for (int i = 0; L.sending && i < conns; i++) {
      client_t *c = &L.cl[i];
      if (!c->closed && c->busy && turn - c->sent > timeout_ms) {
        if (c->measured) L.err_timeout++;
        char why[64];
        snprintf(why, sizeof why, "timeout after %.0f ms", timeout_ms);
        note_error(&L, why);
        drop_client(&L, c);
      }
    }
  }
  if (measured_until == 0) {
    measured_until = now_ms();
    getrusage(RUSAGE_SELF, &ru1);
  }
  for (int i = 0; i < conns; i++)
    if (!L.cl[i].closed) close(L.cl[i].fd);

  double window_ms = measured_until - w_start;
  double user_ms = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e3 + (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e3;
  double sys_ms = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e3 + (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e3;
  printf("{\"durationS\":%.4f,\"requests\":%llu,\"ok\":%llu,", window_ms / 1e3, (unsigned long long)L.requests, (unsigned long long)L.ok);
  print_summary("latencyMs", &L.lat);
  putchar(',');
  print_summary("generatorQueueMs", &L.queue);
  putchar(',');
  print_summary("cycleMs", &L.cycle);
  putchar(',');
  print_summary("sendLagMs", &L.lag);
  putchar(',');
  print_summary("latencyFromDueMs", &L.lat_due);
  printf(",\"offeredRate\":%.1f", rate);
  printf(",\"errors\":{\"status\":%llu,\"socket\":%llu,\"timeout\":%llu,\"framing\":%llu},\"statuses\":{", (unsigned long long)L.err_status,
         (unsigned long long)L.err_socket, (unsigned long long)L.err_timeout, (unsigned long long)L.err_framing);
  int first = 1;
  for (int s = 0; s < 1000; s++)
    if (L.statuses[s]) printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)L.statuses[s]), first = 0;
  printf("},\"bytesSent\":%llu,\"bytesReceived\":%llu,\"userMs\":%.1f,\"systemMs\":%.1f,\"busy\":%.4f,\"firstError\":", (unsigned long long)L.bytes_sent,
         (unsigned long long)L.bytes_recv, user_ms, sys_ms, window_ms > 0 ? 1 - idle_ms / window_ms : 0);
  if (L.first_error[0]) printf("\"%s\"}\n", L.first_error);
  else printf("null}\n");
  return 0;
}

/* ---- respond: the trivial responder ------------------------------------------------------------ */

static const char ANSWER_204[] = "ICAP/1.0 204 No Content\r\nISTag: \"trivial-1\"\r\nEncapsulated: null-body=0\r\n\r\n";
static const char ANSWER_OPTIONS[] =
    "ICAP/1.0 200 OK\r\nMethods: REQMOD, RESPMOD\r\nISTag: \"trivial-1\"\r\nAllow: 204\r\nPreview: 0\r\nEncapsulated: null-body=0\r\n\r\n";
static const char ANSWER_CONTINUE[] = "ICAP/1.0 100 Continue\r\n\r\n";

typedef struct {
  int fd;
  framer_t in;
  int after_preview; /* 100 Continue was sent: the body goes on as chunks */
} peer_t;

static int run_respond(int argc, char **argv) {
  int port = atoi(arg(argc, argv, "--port", "0"));
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1024) != 0) {
    fprintf(stderr, "icap-native respond: 127.0.0.1:%d: %s\n", port, strerror(errno));
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  static char buf[READ_BYTES], out[65536];
  struct epoll_event evs[512];
  for (;;) {
    int k = epoll_wait(ep, evs, 512, -1);
    for (int e = 0; e < k; e++) {
      if (evs[e].data.ptr == NULL) {
        int s = accept(ls, NULL, NULL);
        if (s < 0) continue;
        set_nonblocking_nodelay(s);
        peer_t *p = calloc(1, sizeof *p);
        p->fd = s;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        continue;
      }
      peer_t *p = evs[e].data.ptr;
      int fd = p->fd;
      ssize_t got = read(fd, buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fd);
        free(p);
        continue;
      }
      size_t olen = 0;
      for (ssize_t at = 0; at < got;) {
        int done = 0;
        ssize_t used = frame(&p->in, buf + at, (size_t)(got - at), &done);
        if (used < 0) {
          close(fd);
          free(p);
          goto next_event;
        }
        at += used;
        if (!done) break;
        const char *ans;
        size_t alen;
        if (p->in.options) {
          ans = ANSWER_OPTIONS, alen = sizeof ANSWER_OPTIONS - 1;
        } else if (p->in.preview && !p->after_preview && !p->in.ieof) {
          ans = ANSWER_CONTINUE, alen = sizeof ANSWER_CONTINUE - 1;
          p->after_preview = 1;
          expect_more_chunks(&p->in);
        } else {
          ans = ANSWER_204, alen = sizeof ANSWER_204 - 1;
          p->after_preview = 0;
        }
        if (olen + alen > sizeof out) {
          if (write(fd, out, olen) < 0) break;
          olen = 0;
        }
        memcpy(out + olen, ans, alen);
        olen += alen;
      }
      /* Answers are a few hundred bytes at most per read: the socket buffer takes them. */
      if (olen > 0 && write(fd, out, olen) < 0) {
        close(fd);
        free(p);
      }
    next_event:;
    }
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "load") == 0) return run_load(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "respond") == 0) return run_respond(argc, argv);
  fprintf(stderr, "usage: icap-native load|respond [options] (see the comment at the top of icap-native.c)\n");
  return 2;
}
