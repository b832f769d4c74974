/*
 * garde's native data plane: the gateway's common case served without Python.
 *
 * One event loop (epoll) in its own thread owns a worker's listening socket. It serves what
 * the Python fast path serves (fastpath.py): a retry-safe SOAP call, found in the routing
 * table Python publishes, passed through to the data center that table names, the answer
 * returned with garde's headers. It never decides health: it counts outcomes, and Python
 * reads them (drain) to run metrics, outlier detection and breakers, and publishes a new
 * table whenever a data center's place changes.
 *
 * Anything else is handed over whole: the connection's file descriptor and the bytes read
 * from it go to Python, which serves that connection from then on with every rule. So the
 * parser below only has to *recognise* the common case, strictly; whatever it does not
 * recognise (another method, HTTP/1.0, chunked bodies, odd headers, oversize input, a bad
 * envelope, an unknown route) is Python's to answer or refuse, as before. An attempt that
 * fails is handed over too, with its request unanswered: the operation is retry-safe, so
 * Python's general path may start over, on another data center if it must.
 *
 * The thread never touches a Python object; Python's calls (publish, drain, stop) meet it
 * under one mutex. See docs/gateway-data-plane.md.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef GARDE_PLANE_TLS /* set by setup.py where OpenSSL's headers are found */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#define MAX_EVENTS 256
#define READ_CHUNK 65536
#define MAX_RESPONSE_HEAD 65536
#define MAX_RESPONSE_HEADERS 128
#define MAX_REQUEST_HEADERS_HARD 256
#define TIMER_GRANULARITY 0.005 /* seconds between deadline scans while work is in flight */
#define LISTEN_PAUSE 0.1        /* seconds without accepting when out of descriptors */
#define MAX_STATUS 600
#define MAX_BUCKETS 32
#define MAX_ALLOWED_HOSTS 64
#define MAX_LINK_ID 65536
#define MAX_ROUTE_ID 1048576

/* ------------------------------------------------------------------------------------ */
/* Byte buffers                                                                         */

typedef struct {
    char *data;
    size_t len; /* bytes held, from data[off] */
    size_t off; /* consumed prefix */
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->off && b->off + b->len + extra > b->cap) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_add(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->off + b->len, src, n);
    b->len += n;
    return 0;
}

static inline char *buf_start(Buf *b) { return b->data + b->off; }

static void buf_consume(Buf *b, size_t n) {
    b->off += n;
    b->len -= n;
    if (!b->len) b->off = 0;
}

static void buf_free(Buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}

/* Keep a connection's buffers small once a large message has gone through. */
static void buf_trim(Buf *b) {
    if (!b->len && b->cap > 262144) buf_free(b);
}

static double now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* Python's time.monotonic() reads the same clock */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int name_is(const char *name, size_t n, const char *lowered) {
    size_t m = strlen(lowered);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)name[i]) != lowered[i]) return 0;
    return 1;
}

static int starts_with_ci(const char *s, size_t n, const char *lowered) {
    size_t m = strlen(lowered);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++)
        if (lower((unsigned char)s[i]) != lowered[i]) return 0;
    return 1;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static const char *find(const char *s, size_t n, const char *needle) {
    return memmem(s, n, needle, strlen(needle));
}

/* An encoding name a body may be in (soapxml._ENCODINGS): UTF-8 and its subset. */
static int utf8_name(const char *v, size_t n) {
    return (n == 5 && starts_with_ci(v, n, "utf-8")) || (n == 4 && starts_with_ci(v, n, "utf8")) ||
           (n == 8 && starts_with_ci(v, n, "us-ascii")) || (n == 5 && starts_with_ci(v, n, "ascii"));
}

/* What a request may be and still be served natively (beyond them, Python answers). */
typedef struct {
    size_t max_body, max_headers, max_header_bytes;
    char *allowed[MAX_ALLOWED_HOSTS];
    size_t allowed_len[MAX_ALLOWED_HOSTS];
    int nallowed; /* -1: any Host */
} Limits;

/* ------------------------------------------------------------------------------------ */
/* The routing table Python publishes                                                    */

typedef struct {
    int id;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *head; /* " HTTP/1.1\r\nHost: <host>\r\n", written after the target */
    size_t head_len;
    char *base; /* the data center's base path, replacing the service prefix */
    size_t base_len;
    char *tail; /* "Garde-Data-Center: ...\r\nGarde-Mode: ...\r\n" */
    size_t tail_len;
    char *server_name; /* TLS: the name (or IP address) the certificate must bear; NULL: plain */
} Link;

typedef struct {
    int id;
    char *path;
    size_t path_len;
    char *action; /* NULL: no SOAPAction header */
    size_t action_len;
    int link; /* index into the table's links */
    double timeout, min_try, factor, valid_until;
    int alternatives; /* another data center could answer: the per-try timeout may shrink */
    char *element;    /* the local name the body's first element must have (routing.py) */
    size_t element_len;
    int hedge_link;     /* index into the table's links of the data center a slow call is
                         * hedged on (hedging.py), -1: none */
    double hedge_after; /* seconds after sending that a call still unanswered is hedged */
} Route;

typedef struct Table {
    int refs;
    Link *links;
    int nlinks;
    Route *routes;
    int nroutes;
    int *slots; /* open addressing: route index + 1, 0 = empty */
    size_t nslots;
} Table;

static uint64_t route_hash(const char *path, size_t pn, const char *action, size_t an,
                           int has_action) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < pn; i++) h = (h ^ (unsigned char)path[i]) * 1099511628211ULL;
    h = (h ^ (has_action ? 0x1ff : 0x2ff)) * 1099511628211ULL;
    for (size_t i = 0; i < an; i++) h = (h ^ (unsigned char)action[i]) * 1099511628211ULL;
    return h;
}

static void table_free(Table *t) {
    if (!t) return;
    for (int i = 0; i < t->nlinks; i++) {
        free(t->links[i].head);
        free(t->links[i].base);
        free(t->links[i].tail);
        free(t->links[i].server_name);
    }
    for (int i = 0; i < t->nroutes; i++) {
        free(t->routes[i].path);
        free(t->routes[i].action);
        free(t->routes[i].element);
    }
    free(t->links);
    free(t->routes);
    free(t->slots);
    free(t);
}

static Route *table_find(Table *t, const char *path, size_t pn, const char *action, size_t an,
                         int has_action) {
    if (!t || !t->nslots) return NULL;
    uint64_t h = route_hash(path, pn, action, an, has_action);
    size_t mask = t->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int slot = t->slots[i];
        if (!slot) return NULL;
        Route *r = &t->routes[slot - 1];
        if (r->path_len == pn && memcmp(r->path, path, pn) == 0 &&
            (r->action != NULL) == (has_action != 0) &&
            (!has_action || (r->action_len == an && memcmp(r->action, action, an) == 0)))
            return r;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Outcomes Python reads                                                                 */

typedef struct {
    int fd;
    char *data;
    size_t len;
    int general; /* the first request failed here: Python serves it on the general path */
} Handover;

typedef struct {
    int link;
    uint64_t ok_before; /* successes on this link since its previous event */
    char key[24];       /* the attempts counter's result label: "timeout", "http_503" */
    char reason[24];    /* the reason the breaker records: "timeout", "HTTP 503" */
} Event;

typedef struct {
    uint64_t ok_pending; /* successes not yet reported */
    double latency;      /* moving average of answer time, 0 until one answer */
    int dirty;
} LinkState;

typedef struct {
    uint64_t forwarded;
    uint64_t hist[MAX_BUCKETS + 1];
    uint64_t hedged[MAX_BUCKETS + 1]; /* those of ``hist`` a hedge answered */
    double sum;
    int dirty;
} RouteStats;

/* ------------------------------------------------------------------------------------ */
/* Connections                                                                           */

/* An array indexed by small ids (data centers, operations), zero-filled, doubled as ids
 * grow: ``slot`` gives the element of an id. */
typedef struct {
    char *data;
    int n;       /* elements allocated */
    size_t size; /* of one element */
    int first;   /* elements at the first allocation */
    int limit;   /* ids from 0 to limit - 1 */
} Slots;

enum { KIND_LISTEN = 1, KIND_WAKE, KIND_CLIENT, KIND_UPSTREAM };

typedef struct Conn Conn;

struct Conn {
    int kind;
    int fd;
    Buf in, out;
    uint32_t events; /* what epoll watches now */
    /* client side */
    Conn *upstream;    /* the attempt in flight for this client, if any */
    Conn *hedge;       /* its hedge on another data center, if one was sent and runs */
    size_t req_len;    /* bytes of in that the request in flight occupies */
    int keep_alive;    /* of the request in flight */
    size_t scanned;    /* bytes of in already searched for the end of the head */
    int closing;       /* close once out is written */
    /* waiting for the caller (app.py's _ClientConnection.expired): since when there was
     * nothing to do, the first byte of the request being read (0: none), the last byte */
    double since, first_byte, last_byte;
    int head_done;
    /* upstream side */
    Conn *client;      /* NULL when idle, or when its client went away */
    Table *table;      /* holds the link and route for the attempt in flight */
    Link *link;
    Route *route;
    int link_id;
    int connecting;
    int sent;          /* the request's first byte went out */
    int loser;         /* another attempt answered its call: counted, not relayed */
    int is_hedge;      /* the second attempt of a hedged call */
    double call_started; /* when its call's first attempt started (the caller's wait) */
    double hedge_at;   /* when to hedge this attempt if it has not answered (0: never) */
#ifdef GARDE_PLANE_TLS
    SSL *tls;          /* a TLS connection to the data center, once connected */
    int handshaking;
#endif
    double started, deadline, timeout, idle_since;
    /* Clients: every one the plane holds. Upstreams: those with an attempt in flight
     * (scanned for deadlines). */
    Conn *prev, *next;
    /* Closed, freed once the events in hand are handled: a later event of the same batch
     * may still name it (and its file descriptor may already be another connection's). */
    int dead;
    Conn *next_dead;
};

/* Idle keep-alive connections to one data center (the thread's own, no lock). They stay
 * watched: a data center closing one is seen at once, not when a request is written. */
typedef struct {
    Conn **idle; /* newest last */
    int n;
    double latency; /* moving average of answer time, 0 until one answer */
} Pool;

typedef struct {
    PyObject_HEAD
    int listen_fd;
    int epoll_fd;
    int wake_fd;   /* Python -> thread: a new table, or stop */
    int notify_fd; /* thread -> Python: hand-overs or failures to read */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int table_ready;
    pthread_mutex_t lock;
    /* settings */
    Limits limits;
    double connect_timeout, idle_timeout;
    int max_idle;
    double header_timeout, client_idle_timeout, next_sweep;
    size_t max_clients;
    atomic_size_t python_clients; /* connections Python holds: they count for the cap */
#ifdef GARDE_PLANE_TLS
    SSL_CTX *tls_ctx; /* as ssl.create_default_context(): system CAs, peer and name verified */
#endif
    char *status_lines[MAX_STATUS];
    size_t status_len[MAX_STATUS];
    double buckets[MAX_BUCKETS];
    int nbuckets;
    /* the thread's own */
    Table *table;
    Conn busy;    /* list head of upstreams in flight */
    Conn clients; /* list head of client connections */
    Slots pools;  /* Pool by link id */
    Conn *dead;   /* closed connections to free after this batch of events */
    double listen_paused_until; /* out of descriptors: accepting waits a moment */
    double next_scan;
    atomic_size_t nclients; /* read by Python's ``clients`` */
    /* shared, under lock */
    Table *pending;
    Slots links;  /* LinkState by link id */
    Slots routes; /* RouteStats by route id */
    Handover *handovers;
    size_t nhandovers, cap_handovers;
    Event *events_q;
    size_t nevents, cap_events;
    uint64_t handed_over, served, accepted, cap_reached, hedged;
    int notified;
    atomic_long hedge_credits; /* hedges the budget allows now (Python sets it at each drain) */
} Plane;

static Conn listen_marker = {.kind = KIND_LISTEN};
static Conn wake_marker = {.kind = KIND_WAKE};

#define CLIENT_EVENTS (EPOLLIN | EPOLLRDHUP)
#define UPSTREAM_EVENTS (EPOLLIN | EPOLLRDHUP)

static void watch(Plane *p, Conn *c, uint32_t events) {
    if (c->events == events) return; /* the common case: no system call */
    if (events == 0) {
        epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    } else {
        struct epoll_event ev = {.events = events, .data.ptr = c};
        epoll_ctl(p->epoll_fd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    }
    c->events = events;
}

static void notify_python(Plane *p) {
    /* under lock: one wake-up until Python drains */
    if (!p->notified) {
        uint64_t one = 1;
        ssize_t n = write(p->notify_fd, &one, sizeof one);
        (void)n;
        p->notified = 1;
    }
}

static void *slot(Slots *s, int id) {
    if (id < 0 || id >= s->limit) return NULL;
    if (id >= s->n) {
        int m = s->n ? s->n : s->first;
        while (m <= id) m *= 2;
        char *grown = realloc(s->data, (size_t)m * s->size);
        if (!grown) return NULL;
        memset(grown + (size_t)s->n * s->size, 0, (size_t)(m - s->n) * s->size);
        s->data = grown;
        s->n = m;
    }
    return s->data + (size_t)id * s->size;
}

static LinkState *link_state(Plane *p, int id) { return slot(&p->links, id); } /* under lock */

static RouteStats *route_stats(Plane *p, int id) { return slot(&p->routes, id); } /* under lock */

static Pool *pool_of(Plane *p, int id) { return slot(&p->pools, id); } /* the thread's own */

static void release_table(Table *t) {
    if (t && --t->refs == 0) table_free(t);
}

/* A closed connection: its buffers go now, the rest after the current batch of events. */
static void conn_free(Plane *p, Conn *c) {
    buf_free(&c->in);
    buf_free(&c->out);
    c->dead = 1;
    c->next_dead = p->dead;
    p->dead = c;
}

static void bury(Plane *p) {
    while (p->dead) {
        Conn *c = p->dead;
        p->dead = c->next_dead;
        free(c);
    }
}

static void unlink_conn(Conn *c) {
    if (c->prev) {
        c->prev->next = c->next;
        if (c->next) c->next->prev = c->prev;
        c->prev = c->next = NULL;
    }
}

static void link_after(Conn *head, Conn *c) {
    c->prev = head;
    c->next = head->next;
    if (c->next) c->next->prev = c;
    head->next = c;
}

static void pool_remove(Plane *p, Conn *u) {
    Pool *pool = pool_of(p, u->link_id);
    for (int i = 0; pool && i < pool->n; i++) {
        if (pool->idle[i] == u) {
            memmove(pool->idle + i, pool->idle + i + 1, (size_t)(pool->n - i - 1) * sizeof u);
            pool->n--;
            return;
        }
    }
}

static void upstream_close(Plane *p, Conn *u) {
    unlink_conn(u);
    if (!u->route && !u->client) pool_remove(p, u);
    watch(p, u, 0);
#ifdef GARDE_PLANE_TLS
    if (u->tls) SSL_free(u->tls); /* no close_notify: the connection is dropped either way */
    u->tls = NULL;
#endif
    close(u->fd);
    if (u->table) release_table(u->table);
    conn_free(p, u);
}

static void client_close(Plane *p, Conn *c) {
    if (c->upstream) c->upstream->client = NULL; /* its answer is counted, then dropped */
    if (c->hedge) c->hedge->client = NULL;
    unlink_conn(c);
    watch(p, c, 0);
    close(c->fd);
    conn_free(p, c);
    p->nclients--;
}

/* Give the client's connection, and what was read from it, to Python. */
static void hand_over(Plane *p, Conn *c, int general) {
    char *copy = NULL;
    if (c->in.len) {
        copy = malloc(c->in.len);
        if (!copy) {
            client_close(p, c);
            return;
        }
        memcpy(copy, buf_start(&c->in), c->in.len);
    }
    pthread_mutex_lock(&p->lock);
    if (p->nhandovers == p->cap_handovers) {
        size_t cap = p->cap_handovers ? p->cap_handovers * 2 : 64;
        Handover *grown = realloc(p->handovers, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&p->lock);
            free(copy);
            client_close(p, c);
            return;
        }
        p->handovers = grown;
        p->cap_handovers = cap;
    }
    watch(p, c, 0);
    unlink_conn(c);
    p->handovers[p->nhandovers++] = (Handover){c->fd, copy, c->in.len, general};
    p->handed_over++;
    notify_python(p);
    pthread_mutex_unlock(&p->lock);
    conn_free(p, c);
    p->nclients--;
}

/* ------------------------------------------------------------------------------------ */
/* Reading a request: the common case, recognised strictly                              */

enum { PARSE_MORE = 0, PARSE_OK = 1, PARSE_PYTHON = -1 };

/* One header field as read: pointers into the bytes read, the value as httptools gives it. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} Field;

typedef struct {
    const char *target;
    size_t target_len;
    size_t path_len;
    const char *action;
    size_t action_len;
    int has_action;
    size_t head_len;  /* request line and headers, with the blank line */
    size_t body_len;
    int keep_alive;
    /* header lines to forward: offsets into the head */
    Field fwd[MAX_REQUEST_HEADERS_HARD];
    size_t nfwd;
} Request;

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *const HOP_BY_HOP[] = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host",
    "content-length", "expect", NULL};

static int hop_by_hop(const char *name, size_t n) {
    for (const char *const *h = HOP_BY_HOP; *h; h++)
        if (name_is(name, n, *h)) return 1;
    return 0;
}

/* The header line at ``line`` (the head is CRLF-terminated, so a CR is found): its field
 * (the value as httptools gives it: leading whitespace dropped, trailing kept, which is what
 * is relayed), the value's length without trailing whitespace (what its meaning is read
 * from), and the next line. -1 if it is not a line the plane relays: folded, no name, a
 * name that is not a token, a bare CR, control bytes, or (unless ``obs_text``) bytes
 * beyond ASCII in the value. */
static int read_field(const char *line, int obs_text, Field *f, size_t *meant,
                      const char **next) {
    const char *eol = line;
    while (*eol != '\r') eol++;
    if (eol[1] != '\n') return -1;
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (!colon || colon == line) return -1;
    for (const char *c = line; c < colon; c++)
        if (!is_tchar((unsigned char)*c)) return -1;
    const char *v = colon + 1, *ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    for (const char *c = v; c < ve; c++) {
        unsigned char ch = (unsigned char)*c;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f || (ch > 0x7f && !obs_text)) return -1;
    }
    *f = (Field){line, (size_t)(colon - line), v, (size_t)(ve - v)};
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    *meant = (size_t)(ve - v);
    *next = eol + 2;
    return 0;
}

/* A Content-Length value: digits only, at most 12 of them (no overflow). */
static int read_length(const char *v, size_t n, size_t *length) {
    if (n == 0 || n > 12) return -1;
    size_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        value = value * 10 + (size_t)(v[i] - '0');
    }
    *length = value;
    return 0;
}

/* A Connection value: close or keep-alive; anything else is not for the plane. */
static int read_connection(const char *v, size_t n, int *keep_alive) {
    if (n == 5 && starts_with_ci(v, n, "close")) {
        *keep_alive = 0;
        return 0;
    }
    return n == 10 && starts_with_ci(v, n, "keep-alive") ? 0 : -1;
}

static int host_allowed(const Limits *p, const char *host, size_t n) {
    if (p->nallowed < 0) return 1;
    /* As app.py's _host_name: lower-cased; "[v6]:port" -> "[v6]"; "name:port" -> "name". */
    while (n && (host[0] == ' ' || host[0] == '\t')) host++, n--;
    while (n && (host[n - 1] == ' ' || host[n - 1] == '\t')) n--;
    size_t len = n;
    if (n && host[0] == '[') {
        const char *end = memchr(host, ']', n);
        if (!end) return 0;
        len = (size_t)(end - host) + 1;
    } else {
        const char *colon = memchr(host, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - host) - 1))
            len = (size_t)(colon - host);
    }
    for (int i = 0; i < p->nallowed; i++) {
        if (p->allowed_len[i] != len) continue;
        size_t j = 0;
        while (j < len && lower((unsigned char)host[j]) == p->allowed[i][j]) j++;
        if (j == len) return 1;
    }
    return 0;
}

/* Where the head ends (the index of its blank line's CR), searching from ``*scanned`` (bytes
 * already searched on an earlier read, so a head trickled byte by byte is not searched
 * again and again). -1: not here yet; -2: these bytes cannot be a head the plane serves
 * (a bare LF or CR: Python answers them, at once). */
static long head_end(const char *s, size_t n, size_t *scanned) {
    for (size_t i = *scanned; i < n; i++) {
        if (s[i] == '\n') {
            if (i == 0 || s[i - 1] != '\r') return -2;
        } else if (s[i] == '\r') {
            if (i + 1 == n) break; /* its LF may come with the next read */
            if (s[i + 1] != '\n') return -2;
            if (i + 3 < n && s[i + 2] == '\r' && s[i + 3] == '\n') return (long)i;
        }
    }
    *scanned = n > 3 ? n - 3 : 0; /* a blank line may begin in the last bytes */
    return -1;
}

/* soapxml.check_charset: 1 if a Content-Type value names a charset other than UTF-8. */
static int charset_refused(const char *v, size_t n) {
    for (size_t i = 0; i + 7 <= n; i++) {
        if (!starts_with_ci(v + i, n - i, "charset")) continue;
        size_t at = i + 7;
        while (at < n && is_space((unsigned char)v[at])) at++;
        if (at == n || v[at++] != '=') return 1;
        while (at < n && is_space((unsigned char)v[at])) at++;
        if (at < n && (v[at] == '"' || v[at] == '\'')) at++;
        size_t start = at;
        while (at < n && !is_space((unsigned char)v[at]) && v[at] != ';' && v[at] != '"' &&
               v[at] != '\'')
            at++;
        return !utf8_name(v + start, at - start);
    }
    return 0;
}

static int parse_request(const Limits *p, const char *s, size_t n, size_t *scanned, Request *r) {
    /* What the method and the target's start must be, checked on the first bytes already:
     * anything else is Python's at once, not after waiting for a head that never ends. */
    size_t k = n < 6 ? n : 6;
    if (memcmp(s, "POST /", k) != 0) return PARSE_PYTHON;
    long found = head_end(s, n, scanned);
    if (found == -2) return PARSE_PYTHON;
    if (found == -1) return n > p->max_header_bytes + 8192 ? PARSE_PYTHON : PARSE_MORE;
    const char *end = s + found;
    r->head_len = (size_t)(end - s) + 4;
    if (r->head_len > p->max_header_bytes + 8192) return PARSE_PYTHON;
    /* Request line: exactly "POST <origin-form target> HTTP/1.1". */
    if (r->head_len < 6 || memcmp(s, "POST /", 6) != 0) return PARSE_PYTHON;
    const char *t = s + 5, *line_end = memchr(s, '\r', (size_t)(end - s) + 1);
    if (line_end[1] != '\n') return PARSE_PYTHON;
    const char *sp = t;
    while (sp < line_end && *sp != ' ') {
        unsigned char c = (unsigned char)*sp;
        if (c < 0x21 || c > 0x7e || c == '#') return PARSE_PYTHON;
        sp++;
    }
    if ((size_t)(line_end - sp) != 9 || memcmp(sp, " HTTP/1.1", 9) != 0) return PARSE_PYTHON;
    r->target = t;
    r->target_len = (size_t)(sp - t);
    const char *q = memchr(t, '?', r->target_len);
    r->path_len = q ? (size_t)(q - t) : r->target_len;
    r->has_action = 0;
    r->action = NULL;
    r->action_len = 0;
    r->keep_alive = 1;
    r->nfwd = 0;
    int content_length = 0, host_seen = 0;
    size_t body = 0, count = 0, bytes = 0;
    const char *line = line_end + 2;
    while (line < end + 2) {
        Field f;
        size_t vl;
        if (read_field(line, 0, &f, &vl, &line)) return PARSE_PYTHON;
        const char *name = f.name, *v = f.value;
        size_t nl = f.name_len;
        count++;
        bytes += nl + f.value_len; /* as the Python server counts: the value httptools gives */
        if (count > p->max_headers || bytes > p->max_header_bytes ||
            count > MAX_REQUEST_HEADERS_HARD)
            return PARSE_PYTHON; /* Python answers 431 */
        if (name_is(name, nl, "content-length")) {
            if (content_length++ || read_length(v, vl, &body)) return PARSE_PYTHON;
            if (body > p->max_body) return PARSE_PYTHON; /* 413 */
        } else if (name_is(name, nl, "host")) {
            if (host_seen++ || !host_allowed(p, v, vl)) return PARSE_PYTHON; /* 400, 421 */
        } else if (name_is(name, nl, "connection")) {
            if (read_connection(v, vl, &r->keep_alive)) return PARSE_PYTHON;
        } else if (name_is(name, nl, "transfer-encoding") || name_is(name, nl, "expect") ||
                   name_is(name, nl, "upgrade") || name_is(name, nl, "garde-identity") ||
                   name_is(name, nl, "garde-deadline") ||
                   name_is(name, nl, "proxy-connection")) {
            /* chunked bodies, 100-continue, tokens, deadlines; and the old proxies' header,
             * which httptools honours for keep-alive */
            return PARSE_PYTHON;
        } else if (name_is(name, nl, "content-type")) {
            if (charset_refused(v, vl)) return PARSE_PYTHON; /* not UTF-8: Python answers 415 */
        } else if (name_is(name, nl, "soapaction")) {
            if (r->has_action) return PARSE_PYTHON; /* sent twice: Python refuses it (400) */
            r->has_action = 1;
            r->action = v;
            r->action_len = f.value_len;
        }
        if (!hop_by_hop(name, nl) && !starts_with_ci(name, nl, "garde-")) r->fwd[r->nfwd++] = f;
    }
    if (!content_length) return PARSE_PYTHON; /* an empty body is not an envelope */
    if (!host_seen) return PARSE_PYTHON;       /* HTTP/1.1 without Host: Python answers 400 */
    r->body_len = body;
    if (n - r->head_len < body) return PARSE_MORE;
    return PARSE_OK;
}

/* soapxml._check_encoding on ``head`` (the first bytes after whitespace and a UTF-8 BOM):
 * 0 if an XML declaration there names no encoding or UTF-8. A DTD check on bytes is blind
 * to other encodings, so Python refuses them (415); the plane leaves them to it. */
static int encoding_refused(const char *h, size_t n) {
    if (n < 5 || memcmp(h, "<?xml", 5) != 0) return 0;
    const char *end = find(h, n, "?>");
    if (!end) return 1;
    const char *at = find(h, (size_t)(end - h), "encoding");
    if (!at) return 0;
    at += 8;
    while (at < end && is_space((unsigned char)*at)) at++;
    if (at == end || *at++ != '=') return 1;
    while (at < end && is_space((unsigned char)*at)) at++;
    if (at == end || (*at != '"' && *at != '\'')) return 1;
    const char *name = ++at;
    while (at < end && *at != '"' && *at != '\'') at++;
    return !utf8_name(name, (size_t)(at - name));
}

/* soapxml.check_envelope, the same tests on the same bytes: 0 if it passes. (UTF-16 and
 * UTF-32 bodies fail the tests of markup below, their bytes not being ASCII's.) */
static int envelope_refused(const char *b, size_t n) {
    if (memchr(b, '!', n) && (find(b, n, "<!DOCTYPE") || find(b, n, "<!ENTITY"))) return 1;
    size_t hn = n < 1024 ? n : 1024, i = 0;
    if (memchr(b, 0, n < 4 ? n : 4)) return 1;
    while (i < hn && is_space((unsigned char)b[i])) i++;
    if (hn - i >= 3 && memcmp(b + i, "\xef\xbb\xbf", 3) == 0) i += 3;
    if (encoding_refused(b + i, hn - i)) return 1;
    if (i >= hn || b[i] != '<' || !find(b + i, hn - i, "Envelope")) return 1;
    size_t ts = n > 128 ? n - 128 : 0, te = n;
    while (te > ts && is_space((unsigned char)b[te - 1])) te--;
    if (te - ts < 9 || memcmp(b + te - 9, "Envelope>", 9) != 0) return 1;
    if (!find(b + ts, te - ts, "Body")) return 1;
    return 0;
}

static int name_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(unsigned char c) {
    return name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static int tag_end(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' || c == '>';
}

/* A qualified name at b[*i]: its local part (after the prefix and colon, if any) and the
 * index of the byte after it, which must end a tag name. -1 if it is not one. */
static int read_qname(const char *b, size_t n, size_t *i, size_t *prefix_len, size_t *local) {
    size_t j = *i;
    if (j >= n || !name_start((unsigned char)b[j])) return -1;
    while (j < n && name_char((unsigned char)b[j])) j++;
    *prefix_len = 0;
    *local = *i;
    if (j < n && b[j] == ':') {
        *prefix_len = j + 1 - *i;
        *local = ++j;
        if (j >= n || !name_start((unsigned char)b[j])) return -1;
        while (j < n && name_char((unsigned char)b[j])) j++;
    }
    if (j >= n || !tag_end((unsigned char)b[j])) return -1;
    *i = j;
    return 0;
}

/* soapxml.first_body_child, the same reading of the same bytes: the local name of the SOAP
 * Body's first element (``*len`` bytes), or NULL when that cannot be told without parsing
 * (Python then parses the body, and refuses it if it is another operation's). */
static const char *first_body_child(const char *b, size_t n, size_t *len) {
    size_t i = 0, plen, local;
    while (i < n && is_space((unsigned char)b[i])) i++;
    if (n - i >= 3 && memcmp(b + i, "\xef\xbb\xbf", 3) == 0) i += 3;
    if (n - i >= 5 && memcmp(b + i, "<?xml", 5) == 0) {
        const char *gt = memchr(b + i, '>', n - i);
        if (!gt || gt - 1 < b + i + 5 || gt[-1] != '?') return NULL;
        i = (size_t)(gt - b) + 1;
    }
    while (i < n && is_space((unsigned char)b[i])) i++;
    if (i >= n || b[i++] != '<') return NULL;
    size_t start = i;
    if (read_qname(b, n, &i, &plen, &local) || i - local != 8 || memcmp(b + local, "Envelope", 8))
        return NULL;
    /* The Body by the Envelope's prefix, then its first element. */
    char tag[80], close[80];
    if (plen > 64) return NULL;
    int tn = snprintf(tag, sizeof tag, "<%.*sBody", (int)plen, b + start);
    int cn = snprintf(close, sizeof close, "</%.*sHeader", (int)plen, b + start);
    const char *at = NULL;
    size_t from = i;
    while (from < n && (at = memmem(b + from, n - from, tag, (size_t)tn))) {
        size_t after = (size_t)(at - b) + (size_t)tn;
        if (after < n && tag_end((unsigned char)b[after])) break;
        from = (size_t)(at - b) + 1; /* "<Body" beginning a longer name: search on */
        at = NULL;
    }
    /* "<!" is a comment or CDATA (a DTD is refused before): markup could hide in them. A
     * Header closing after the "Body" found means that one was inside the Header. */
    if (!at || memmem(b, (size_t)(at - b), "<!", 2) ||
        memmem(at, n - (size_t)(at - b), close, (size_t)cn))
        return NULL;
    size_t j = (size_t)(at - b) + (size_t)tn;
    if (j < n && is_space((unsigned char)b[j])) { /* attributes, values quoted */
        while (j < n && b[j] != '>') {
            if (b[j] == '"' || b[j] == '\'') {
                const char *q = memchr(b + j + 1, b[j], n - j - 1);
                if (!q) return NULL;
                j = (size_t)(q - b);
            }
            j++;
        }
    }
    if (j >= n || b[j++] != '>') return NULL;
    while (j < n && is_space((unsigned char)b[j])) j++;
    if (j >= n || b[j++] != '<') return NULL;
    if (read_qname(b, n, &j, &plen, &local)) return NULL;
    *len = j - local;
    return b + local;
}

/* ------------------------------------------------------------------------------------ */
/* Upstream attempts                                                                     */

static void record_failure(Plane *p, Conn *u, const char *key, const char *reason) {
    pthread_mutex_lock(&p->lock);
    LinkState *ls = link_state(p, u->link_id);
    if (p->nevents == p->cap_events) {
        size_t cap = p->cap_events ? p->cap_events * 2 : 64;
        Event *grown = realloc(p->events_q, cap * sizeof *grown);
        if (grown) {
            p->events_q = grown;
            p->cap_events = cap;
        }
    }
    if (p->nevents < p->cap_events && ls) {
        Event *e = &p->events_q[p->nevents++];
        e->link = u->link_id;
        e->ok_before = ls->ok_pending; /* keeps successes and failures in their order */
        ls->ok_pending = 0;
        snprintf(e->key, sizeof e->key, "%s", key);
        snprintf(e->reason, sizeof e->reason, "%s", reason);
        notify_python(p);
    }
    pthread_mutex_unlock(&p->lock);
}

/* The attempt ended without an answer the caller may see. ``key`` (when not NULL) counts it
 * against the data center. The request is still at the head of the client's input: Python
 * starts over with every rule (the operation is retry-safe). */
static void attempt_failed(Plane *p, Conn *u, const char *key, const char *reason) {
    Conn *c = u->client;
    if (key) record_failure(p, u, key, reason);
    u->client = NULL;
    u->route = NULL;
    if (c) {
        /* A hedged call: the other attempt may still answer it. */
        Conn *other = c->upstream == u ? c->hedge : c->hedge == u ? c->upstream : NULL;
        c->upstream = other;
        c->hedge = NULL;
        if (!other) hand_over(p, c, 1);
    }
    upstream_close(p, u);
}

static const char *connect_reason(int err) {
    return err == ECONNREFUSED ? "refused" : "connect_error";
}

/* An idle connection to ``link``, or a new one being made. */
static Conn *upstream_for(Plane *p, Link *link, double now) {
    Pool *pool = pool_of(p, link->id);
    while (pool && pool->n) {
        Conn *u = pool->idle[--pool->n];
        if (now - u->idle_since <= p->idle_timeout) return u;
        /* The data center may close it any moment: a request written into that race
         * would fail after sending. */
        upstream_close(p, u);
    }
    Conn *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->kind = KIND_UPSTREAM;
    u->link_id = link->id;
    int fd = socket(link->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        free(u);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    u->fd = fd;
    if (connect(fd, (struct sockaddr *)&link->addr, link->addrlen) && errno != EINPROGRESS)
        u->connecting = -errno;
    else
        u->connecting = 1;
    return u;
}

/* Writing to and reading from a data center, plain or TLS: > 0 bytes moved; 0 the data
 * center closed the connection; -1 nothing now (``*want`` gets EPOLLOUT if writability is
 * what to wait for); -2 the connection failed. */
static ssize_t upstream_send(Conn *u, const char *b, size_t n, uint32_t *want) {
#ifdef GARDE_PLANE_TLS
    if (u->tls) {
        ERR_clear_error();
        int done = SSL_write(u->tls, b, n > INT32_MAX ? INT32_MAX : (int)n);
        if (done > 0) return done;
        int e = SSL_get_error(u->tls, done);
        if (e == SSL_ERROR_WANT_WRITE) *want = EPOLLOUT;
        return (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? -1 : -2;
    }
#endif
    for (;;) {
        ssize_t done = send(u->fd, b, n, MSG_NOSIGNAL);
        if (done >= 0) return done ? done : -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = EPOLLOUT;
            return -1;
        }
        return -2;
    }
}

static ssize_t upstream_recv(Conn *u, char *b, size_t n, uint32_t *want) {
#ifdef GARDE_PLANE_TLS
    if (u->tls) {
        ERR_clear_error();
        int done = SSL_read(u->tls, b, n > INT32_MAX ? INT32_MAX : (int)n);
        if (done > 0) return done;
        int e = SSL_get_error(u->tls, done);
        if (e == SSL_ERROR_WANT_READ) return -1; /* e.g. a session ticket, and nothing else */
        if (e == SSL_ERROR_WANT_WRITE) {
            *want = EPOLLOUT;
            return -1;
        }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) return 0;
        return -2;
    }
#endif
    for (;;) {
        ssize_t done = recv(u->fd, b, n, 0);
        if (done >= 0) return done;
        if (errno == EINTR) continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
}

/* Write the request; -1 when the attempt ended (``u`` is gone), 0 otherwise. */
static int upstream_flush(Plane *p, Conn *u) {
    while (u->out.len) {
        uint32_t want = 0;
        ssize_t n = upstream_send(u, buf_start(&u->out), u->out.len, &want);
        if (n > 0) {
            u->sent = 1;
            buf_consume(&u->out, (size_t)n);
        } else if (n == -1) {
            watch(p, u, UPSTREAM_EVENTS | want);
            return 0;
        } else {
            attempt_failed(p, u, "reset", "reset");
            return -1;
        }
    }
    buf_trim(&u->out);
    watch(p, u, UPSTREAM_EVENTS);
    return 0;
}

/* The request as ``link`` is sent it, into ``o``; -1 when out of memory. */
static int write_request(Buf *o, Link *link, Request *r, const char *body) {
    char length[48];
    int ln = snprintf(length, sizeof length, "Content-Length: %zu\r\n", r->body_len);
    size_t need = 5 + link->base_len + (r->target_len - r->path_len) + link->head_len +
                  (size_t)ln + r->head_len + r->body_len;
    if (buf_reserve(o, need)) return -1;
    /* As fastpath.py writes it: the data center's path and the query, its Host, the
     * length, the caller's end-to-end headers in their order, the body. */
    buf_add(o, "POST ", 5);
    buf_add(o, link->base, link->base_len);
    buf_add(o, r->target + r->path_len, r->target_len - r->path_len);
    buf_add(o, link->head, link->head_len);
    buf_add(o, length, (size_t)ln);
    for (size_t i = 0; i < r->nfwd; i++) {
        buf_add(o, r->fwd[i].name, r->fwd[i].name_len);
        buf_add(o, ": ", 2);
        buf_add(o, r->fwd[i].value, r->fwd[i].value_len);
        buf_add(o, "\r\n", 2);
    }
    buf_add(o, "\r\n", 2);
    buf_add(o, body, r->body_len);
    return 0;
}

/* A connection made for an attempt that will not start after all. */
static void upstream_drop(Plane *p, Conn *u) {
    if (u->connecting) {
        close(u->fd);
        conn_free(p, u);
    } else {
        upstream_close(p, u);
    }
}

static void start_attempt(Plane *p, Conn *c, Request *r, Route *route, double now) {
    Table *t = p->table;
    Link *link = &t->links[route->link];
    Conn *u = upstream_for(p, link, now);
    if (!u) {
        hand_over(p, c, 0);
        return;
    }
    if (write_request(&u->out, link, r, buf_start(&c->in) + r->head_len)) {
        upstream_drop(p, u);
        hand_over(p, c, 0);
        return;
    }
    t->refs++;
    u->table = t;
    u->link = link;
    u->route = route;
    u->client = c;
    u->started = now;
    u->call_started = now;
    u->sent = 0;
    u->loser = 0;
    u->is_hedge = 0;
    double timeout = route->timeout;
    Pool *pool = pool_of(p, link->id);
    if (route->alternatives && pool && pool->latency > 0) {
        /* As fastpath.py: another data center could answer, so a slow one is left sooner. */
        double shrunk = route->factor * pool->latency;
        if (shrunk < route->min_try) shrunk = route->min_try;
        if (shrunk < timeout) timeout = shrunk;
    }
    u->timeout = timeout;
    u->deadline = now + timeout;
    /* Hedged only if the hedge would go before this attempt gives up by itself. */
    u->hedge_at = route->hedge_link >= 0 && route->hedge_after > 0 && route->hedge_after < timeout
                      ? now + route->hedge_after
                      : 0;
    c->upstream = u;
    c->hedge = NULL;
    c->req_len = r->head_len + r->body_len;
    c->keep_alive = r->keep_alive;
    link_after(&p->busy, u);
    if (u->connecting < 0) {
        int err = -u->connecting;
        u->connecting = 0;
        attempt_failed(p, u, connect_reason(err), connect_reason(err));
        return;
    }
    if (u->connecting) {
        u->deadline = now + p->connect_timeout;
        watch(p, u, EPOLLOUT);
        return;
    }
    upstream_flush(p, u);
}

/* ``u`` has not answered by its hedge time: send its call to the route's next data center
 * too, within the budget (hedging.py). The first usable answer is relayed; the other attempt
 * runs to its end, counted but not relayed. */
static void start_hedge(Plane *p, Conn *u, double now) {
    Conn *c = u->client;
    Route *route = u->route;
    Table *t = u->table;
    u->hedge_at = 0;
    if (!c || c->hedge || c->upstream != u || !route || !t || route->hedge_link < 0) return;
    if (atomic_load(&p->hedge_credits) <= 0) return; /* the budget is spent */
    Request r;
    size_t scanned = 0;
    r.head_len = 0;
    if (parse_request(&p->limits, buf_start(&c->in), c->req_len, &scanned, &r) != PARSE_OK)
        return;
    Link *link = &t->links[route->hedge_link];
    Conn *h = upstream_for(p, link, now);
    if (!h) return;
    if (write_request(&h->out, link, &r, buf_start(&c->in) + r.head_len)) {
        upstream_drop(p, h);
        return;
    }
    atomic_fetch_sub(&p->hedge_credits, 1);
    pthread_mutex_lock(&p->lock);
    p->hedged++;
    pthread_mutex_unlock(&p->lock);
    t->refs++;
    h->table = t;
    h->link = link;
    h->route = route;
    h->client = c;
    h->started = now;
    h->call_started = u->started;
    h->sent = 0;
    h->loser = 0;
    h->is_hedge = 1;
    h->hedge_at = 0;
    double left = route->timeout - (now - u->started);
    h->timeout = left > 0.001 ? left : 0.001;
    h->deadline = now + h->timeout;
    c->hedge = h;
    link_after(&p->busy, h);
    if (h->connecting < 0) {
        int err = -h->connecting;
        h->connecting = 0;
        attempt_failed(p, h, connect_reason(err), connect_reason(err));
        return;
    }
    if (h->connecting) {
        double connect = now + p->connect_timeout;
        h->deadline = connect < h->deadline ? connect : h->deadline;
        watch(p, h, EPOLLOUT);
        return;
    }
    upstream_flush(p, h);
}

/* Serve the client's next request if its bytes are all here. */
static void client_serve(Plane *p, Conn *c) {
    if (c->upstream || c->out.len) return;
    watch(p, c, CLIENT_EVENTS);
    if (!c->in.len) {
        buf_trim(&c->in);
        return;
    }
    Request r;
    r.head_len = 0;
    int parsed = parse_request(&p->limits, buf_start(&c->in), c->in.len, &c->scanned, &r);
    if (!c->first_byte) c->first_byte = now_monotonic(); /* pipelined: read with the last */
    if (parsed == PARSE_MORE) {
        c->head_done = r.head_len > 0; /* the body is what is awaited */
        return;
    }
    if (parsed == PARSE_PYTHON) {
        hand_over(p, c, 0);
        return;
    }
    Route *route =
        table_find(p->table, r.target, r.path_len, r.action, r.action_len, r.has_action);
    double now = now_monotonic();
    const char *body = buf_start(&c->in) + r.head_len, *element = NULL;
    size_t element_len = 0;
    if (route && !envelope_refused(body, r.body_len))
        element = first_body_child(body, r.body_len, &element_len);
    if (!route || route->link < 0 || now >= route->valid_until || !element ||
        element_len != route->element_len || memcmp(element, route->element, element_len)) {
        /* another operation (by its SOAPAction or its body: Python refuses a mismatch), a
         * data center to choose, or a refusal */
        hand_over(p, c, 0);
        return;
    }
    start_attempt(p, c, &r, route, now);
}

/* Write what is pending; 0 when all is written, 1 when waiting for the socket, -1 when
 * the connection is gone. */
static int client_flush(Plane *p, Conn *c) {
    while (c->out.len) {
        ssize_t n = send(c->fd, buf_start(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(p, c, CLIENT_EVENTS | EPOLLOUT);
            return 1;
        } else {
            client_close(p, c);
            return -1;
        }
    }
    buf_trim(&c->out);
    if (c->closing) {
        client_close(p, c);
        return -1;
    }
    return 0;
}

static void client_readable(Plane *p, Conn *c) {
    size_t limit = p->limits.max_body + p->limits.max_header_bytes + 2 * READ_CHUNK;
    for (;;) {
        if (c->in.len >= limit) {
            /* A pipelining caller waits for us: read on when this request is answered. */
            watch(p, c, c->out.len ? EPOLLOUT : 0);
            if (!c->upstream && !c->out.len) hand_over(p, c, 0);
            return;
        }
        if (buf_reserve(&c->in, READ_CHUNK)) {
            client_close(p, c);
            return;
        }
        ssize_t n = recv(c->fd, buf_start(&c->in) + c->in.len, READ_CHUNK, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->last_byte = now_monotonic();
            if (!c->first_byte) c->first_byte = c->last_byte;
            if ((size_t)n < READ_CHUNK) break;
        } else if (n == 0) {
            client_close(p, c); /* the caller hung up */
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            client_close(p, c);
            return;
        }
    }
    client_serve(p, c);
}

/* ------------------------------------------------------------------------------------ */
/* Reading an answer                                                                     */

typedef struct {
    int status;
    size_t head_len, body_len;
    size_t wire_len;  /* the whole answer's bytes on the connection */
    const char *body; /* body_len bytes: in the input, or in ``decoded`` */
    Buf decoded;      /* a chunked body, put together (freed by the caller) */
    int keep_alive;
    Field h[MAX_RESPONSE_HEADERS];
    size_t nh;
} Response;

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* A chunked body from ``pos``: PARSE_MORE, PARSE_PYTHON (malformed, or trailer fields,
 * which httptools would report as headers), or PARSE_OK with the body put together. */
static int read_chunks(const char *s, size_t n, size_t pos, Response *r) {
    for (int pass = 0; pass < 2; pass++) {
        /* First pass: is it all here and well-formed? Second: copy the data out. */
        size_t at = pos, total = 0;
        for (;;) {
            size_t size = 0, digits = 0;
            while (at < n && hex_value((unsigned char)s[at]) >= 0) {
                if (++digits > 15) return PARSE_PYTHON;
                size = size * 16 + (size_t)hex_value((unsigned char)s[at++]);
            }
            if (at == n) return PARSE_MORE;
            if (!digits) return PARSE_PYTHON;
            if (s[at] == ';') { /* an extension: skipped, as httptools does */
                while (at < n && s[at] != '\r') {
                    unsigned char c = (unsigned char)s[at++];
                    if ((c < 0x20 && c != '\t') || c >= 0x7f) return PARSE_PYTHON;
                }
            }
            if (at + 2 > n) return PARSE_MORE;
            if (s[at] != '\r' || s[at + 1] != '\n') return PARSE_PYTHON;
            at += 2;
            if (size == 0) {
                if (at + 2 > n) return PARSE_MORE;
                if (s[at] != '\r' || s[at + 1] != '\n') return PARSE_PYTHON; /* trailers */
                r->wire_len = at + 2;
                break;
            }
            if (size > n - at || n - at - size < 2) return PARSE_MORE;
            if (s[at + size] != '\r' || s[at + size + 1] != '\n') return PARSE_PYTHON;
            if (pass == 1 && buf_add(&r->decoded, s + at, size)) return PARSE_PYTHON;
            total += size;
            at += size + 2;
        }
        if (pass == 0 && buf_reserve(&r->decoded, total + 1)) return PARSE_PYTHON;
        r->body_len = total;
    }
    r->body = r->decoded.data ? buf_start(&r->decoded) : "";
    return PARSE_OK;
}

static const char *const RESPONSE_SKIP[] = {"connection", "keep-alive", "transfer-encoding",
                                            "content-length", "date", "server", NULL};

/* PARSE_OK, PARSE_MORE, or PARSE_PYTHON when the answer is not one relayed natively. ``eof``:
 * the data center closed the connection after these bytes (the end of a body without
 * Content-Length or chunks, as the Python transport reads it). */
static int parse_response(const char *s, size_t n, int eof, Response *r) {
    r->decoded = (Buf){0};
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++) {
        if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') {
            end = s + i;
            break;
        }
    }
    if (!end) return n > MAX_RESPONSE_HEAD ? PARSE_PYTHON : PARSE_MORE;
    r->head_len = (size_t)(end - s) + 4;
    if (r->head_len < 16 || memcmp(s, "HTTP/1.1 ", 9) != 0) return PARSE_PYTHON;
    if (s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (s[12] != ' ' && s[12] != '\r'))
        return PARSE_PYTHON;
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (r->status < 200 || r->status == 204 || r->status == 304) return PARSE_PYTHON;
    const char *line = s + 12;
    while (*line != '\r') { /* the reason phrase: no control bytes (a bare LF would hide a
                               * header in it) */
        unsigned char c = (unsigned char)*line++;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return PARSE_PYTHON;
    }
    if (line[1] != '\n') return PARSE_PYTHON;
    line += 2;
    int has_length = 0, chunked = 0;
    r->keep_alive = 1;
    r->nh = 0;
    r->body_len = 0;
    while (line < end + 2) {
        Field f;
        size_t vl;
        if (r->nh == MAX_RESPONSE_HEADERS || read_field(line, 1, &f, &vl, &line))
            return PARSE_PYTHON;
        const char *name = f.name, *v = f.value;
        size_t nl = f.name_len;
        if (name_is(name, nl, "content-length")) {
            if (has_length++ || read_length(v, vl, &r->body_len)) return PARSE_PYTHON;
        } else if (name_is(name, nl, "transfer-encoding")) {
            /* chunked alone is put together here; other codings are Python's to refuse */
            if (chunked++ || vl != 7 || !starts_with_ci(v, vl, "chunked")) return PARSE_PYTHON;
        } else if (name_is(name, nl, "connection")) {
            if (read_connection(v, vl, &r->keep_alive)) return PARSE_PYTHON;
        }
        int skip = 0;
        for (const char *const *k = RESPONSE_SKIP; *k && !skip; k++) skip = name_is(name, nl, *k);
        if (!skip) r->h[r->nh++] = f;
    }
    if (has_length && chunked) return PARSE_PYTHON; /* smuggling material */
    if (chunked) return read_chunks(s, n, r->head_len, r);
    if (!has_length) {
        /* Delimited by the close: complete when the data center closes. */
        if (!eof) return PARSE_MORE;
        r->body = s + r->head_len;
        r->body_len = n - r->head_len;
        r->wire_len = n;
        r->keep_alive = 0;
        return PARSE_OK;
    }
    if (n - r->head_len < r->body_len) return PARSE_MORE;
    r->body = s + r->head_len;
    r->wire_len = r->head_len + r->body_len;
    return PARSE_OK;
}

/* forwarding.is_server_failure: a SOAP Fault (HTTP 500) is the service answering. */
static int server_failure(int status, const char *body, size_t n) {
    if (status == 502 || status == 503 || status == 504) return 1;
    if (status >= 500) return !find(body, n, "Fault>") && !find(body, n, "Fault ");
    return 0;
}

static void pool_upstream(Plane *p, Conn *u, double now) {
    unlink_conn(u);
    if (u->table) release_table(u->table);
    u->table = NULL;
    u->link = NULL;
    u->loser = 0;
    u->hedge_at = 0;
    Pool *pool = pool_of(p, u->link_id);
    if (pool && !pool->idle) pool->idle = calloc((size_t)p->max_idle, sizeof *pool->idle);
    if (!pool || !pool->idle || pool->n >= p->max_idle) {
        upstream_close(p, u);
        return;
    }
    u->idle_since = now;
    pool->idle[pool->n++] = u;
}

static void record_success(Plane *p, Conn *u, double elapsed) {
    double waited = u->call_started > 0 ? elapsed + (u->started - u->call_started) : elapsed;
    Pool *pool = pool_of(p, u->link_id);
    double latency = elapsed;
    if (pool) {
        latency = pool->latency > 0 ? pool->latency + 0.1 * (elapsed - pool->latency) : elapsed;
        pool->latency = latency;
    }
    int bucket = 0;
    while (bucket < p->nbuckets && waited > p->buckets[bucket]) bucket++;
    pthread_mutex_lock(&p->lock);
    LinkState *ls = link_state(p, u->link_id);
    if (ls) {
        ls->ok_pending++;
        ls->latency = latency;
        ls->dirty = 1;
    }
    RouteStats *rs = u->loser ? NULL : route_stats(p, u->route->id);
    if (rs) {
        rs->forwarded++;
        rs->hist[bucket]++;
        if (u->is_hedge) rs->hedged[bucket]++;
        rs->sum += waited;
        rs->dirty = 1;
    }
    if (!u->loser) p->served++;
    pthread_mutex_unlock(&p->lock);
}

static void answer_client(Plane *p, Conn *c, Link *link, Response *r, const char *body) {
    Buf *o = &c->out;
    int status = r->status;
    char length[48];
    int ln = snprintf(length, sizeof length, "Content-Length: %zu\r\n", r->body_len);
    size_t need = p->status_len[status] + link->tail_len + (size_t)ln + r->head_len + 24 +
                  r->body_len;
    c->upstream = NULL;
    if (buf_reserve(o, need)) {
        client_close(p, c);
        return;
    }
    /* As fastpath.py writes it: garde's status line, the answer's headers but those the
     * server writes, garde's headers, the length, the body. */
    buf_add(o, p->status_lines[status], p->status_len[status]);
    for (size_t i = 0; i < r->nh; i++) {
        buf_add(o, r->h[i].name, r->h[i].name_len);
        buf_add(o, ": ", 2);
        buf_add(o, r->h[i].value, r->h[i].value_len);
        buf_add(o, "\r\n", 2);
    }
    buf_add(o, link->tail, link->tail_len);
    buf_add(o, length, (size_t)ln);
    if (!c->keep_alive) {
        buf_add(o, "Connection: close\r\n", 19);
        c->closing = 1;
    }
    buf_add(o, "\r\n", 2);
    buf_add(o, body, r->body_len);
    buf_consume(&c->in, c->req_len);
    c->req_len = 0;
    c->scanned = 0;
    c->since = now_monotonic();
    c->first_byte = 0; /* the next request's bytes, if here, are dated by client_serve */
    c->head_done = 0;
    if (client_flush(p, c) == 0) client_serve(p, c);
}

static void upstream_readable(Plane *p, Conn *u) {
    int eof = 0;
    uint32_t want = 0;
    for (;;) {
        if (buf_reserve(&u->in, READ_CHUNK)) {
            attempt_failed(p, u, "protocol", "protocol");
            return;
        }
        ssize_t n = upstream_recv(u, buf_start(&u->in) + u->in.len, READ_CHUNK, &want);
        if (n > 0) {
            u->in.len += (size_t)n;
#ifdef GARDE_PLANE_TLS
            if (u->tls) continue; /* decrypted records may wait inside OpenSSL, unseen by epoll */
#endif
            if ((size_t)n < READ_CHUNK) break;
        } else if (n == 0) {
            eof = 1;
            break;
        } else if (n == -1) {
            break;
        } else {
            eof = -1; /* reset */
            break;
        }
    }
    if (!u->route) {
        /* Idle: the data center closed it, or sent what nobody asked for (a TLS session
         * ticket is read by OpenSSL and leaves nothing here: the connection stays). */
        if (u->in.len || eof) upstream_close(p, u);
        return;
    }
    if (want) watch(p, u, UPSTREAM_EVENTS | want);
    Response r;
    int parsed = parse_response(buf_start(&u->in), u->in.len, eof == 1, &r);
    if (parsed == PARSE_MORE) {
        buf_free(&r.decoded);
        if (eof)
            attempt_failed(p, u, "reset", "reset"); /* closed mid-answer */
        else if (u->in.len > MAX_RESPONSE_HEAD + 4 * p->limits.max_body) /* bounded */
            attempt_failed(p, u, "protocol", "protocol");
        return;
    }
    if (parsed == PARSE_PYTHON) {
        /* Not an answer relayed natively (1xx, 204, 304, trailers, other codings): Python
         * asks again through its own transport. Not the data center's fault: not counted. */
        buf_free(&r.decoded);
        attempt_failed(p, u, NULL, NULL);
        return;
    }
    if (server_failure(r.status, r.body, r.body_len)) {
        char key[24], reason[24];
        snprintf(key, sizeof key, "http_%d", r.status);
        snprintf(reason, sizeof reason, "HTTP %d", r.status);
        buf_free(&r.decoded);
        attempt_failed(p, u, key, reason);
        return;
    }
    double now = now_monotonic();
    record_success(p, u, now - u->started);
    Conn *c = u->client;
    Link *link = u->link;
    u->client = NULL;
    u->route = NULL;
    u->hedge_at = 0;
    if (c) {
        /* A hedged call: the other attempt lost. It runs to its end and is counted. */
        Conn *other = c->upstream == u ? c->hedge : c->upstream;
        if (other && other != u) {
            /* Outrun by its hedge: news against the first attempt's data center (Python's
             * outlier detection counts it as a failure), not the end of that attempt. */
            if (u->is_hedge) record_failure(p, other, "", "slow");
            other->client = NULL;
            other->loser = 1;
            other->hedge_at = 0;
        }
        c->upstream = u;
        c->hedge = NULL;
    }
    int reusable = r.keep_alive && !eof && u->in.len == r.wire_len;
    /* Pooled (or closed) first: the client's next request may want this connection. The
     * answer's bytes are moved out of it first, and the table (holding ``link``) stays
     * alive until they are written. */
    Table *held = u->table;
    u->table = NULL;
    Buf answer = u->in;
    u->in = (Buf){0};
    if (reusable)
        pool_upstream(p, u, now);
    else
        upstream_close(p, u);
    if (c) answer_client(p, c, link, &r, r.body);
    buf_free(&answer);
    buf_free(&r.decoded);
    release_table(held);
}

#ifdef GARDE_PLANE_TLS
/* TLS on a freshly connected socket, verifying the data center as Python's default context
 * does: a certificate chain to the system's authorities, bearing the host name (SNI sent)
 * or the IP address the catalog names. */
static int tls_start(Plane *p, Conn *u) {
    SSL *ssl = SSL_new(p->tls_ctx);
    if (!ssl) return -1;
    const char *name = u->link->server_name;
    struct in6_addr a6;
    struct in_addr a4;
    int ok = SSL_set_fd(ssl, u->fd);
    if (inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1) {
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else {
        ok = ok && SSL_set_tlsext_host_name(ssl, name) && SSL_set1_host(ssl, name);
    }
    if (!ok) {
        SSL_free(ssl);
        return -1;
    }
    SSL_set_connect_state(ssl);
    u->tls = ssl;
    u->handshaking = 1;
    return 0;
}

static void tls_handshake(Plane *p, Conn *u) {
    ERR_clear_error();
    int done = SSL_do_handshake(u->tls);
    if (done == 1) {
        u->handshaking = 0;
        u->deadline = now_monotonic() + u->timeout; /* connected: the answer's time runs */
        upstream_flush(p, u);
        return;
    }
    int e = SSL_get_error(u->tls, done);
    if (e == SSL_ERROR_WANT_READ) {
        watch(p, u, UPSTREAM_EVENTS);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        watch(p, u, UPSTREAM_EVENTS | EPOLLOUT);
    } else {
        /* a certificate not verified, a protocol refused: nothing was sent */
        attempt_failed(p, u, "connect_error", "connect_error");
    }
}
#endif

static void upstream_event(Plane *p, Conn *u, uint32_t events) {
    if (u->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            const char *reason = connect_reason(err ? err : ECONNREFUSED);
            u->connecting = 0;
            attempt_failed(p, u, reason, reason);
            return;
        }
        if (!(events & EPOLLOUT)) return;
        u->connecting = 0;
#ifdef GARDE_PLANE_TLS
        if (u->link->server_name) {
            /* the handshake stays within the connect timeout, as in Python's transport */
            if (tls_start(p, u)) {
                attempt_failed(p, u, "connect_error", "connect_error");
                return;
            }
            tls_handshake(p, u);
            return;
        }
#endif
        u->deadline = now_monotonic() + u->timeout; /* connected: the answer's time runs */
        upstream_flush(p, u);
        return;
    }
#ifdef GARDE_PLANE_TLS
    if (u->handshaking) {
        tls_handshake(p, u);
        return;
    }
#endif
    if ((events & EPOLLOUT) && u->out.len) {
        if (upstream_flush(p, u) < 0) return; /* the attempt ended */
        if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    }
    upstream_readable(p, u);
}

static void scan_deadlines(Plane *p, double now) {
    Conn *u = p->busy.next;
    while (u) {
        Conn *next = u->next;
        if (now >= u->deadline) {
            int connecting = u->connecting;
#ifdef GARDE_PLANE_TLS
            connecting = connecting || u->handshaking;
#endif
            if (connecting) {
                u->connecting = 0;
                attempt_failed(p, u, "connect_timeout", "connect_timeout");
            } else {
                attempt_failed(p, u, "timeout", "timeout");
            }
        } else if (u->hedge_at && now >= u->hedge_at) {
            start_hedge(p, u, now);
        }
        u = next;
    }
}

/* ------------------------------------------------------------------------------------ */
/* The loop                                                                              */

/* At max_clients, make room for one more (as app.py's GatewayServer.admit): close the client
 * connection that has waited longest for its caller; 0 if every one is being served. */
static int admit(Plane *p) {
    if (atomic_load(&p->nclients) + atomic_load(&p->python_clients) < p->max_clients) return 1;
    Conn *oldest = NULL;
    for (Conn *c = p->clients.next; c; c = c->next)
        if (!c->upstream && !c->out.len && (!oldest || c->since < oldest->since)) oldest = c;
    pthread_mutex_lock(&p->lock);
    p->cap_reached++; /* Python logs it (native.py) */
    pthread_mutex_unlock(&p->lock);
    if (oldest) client_close(p, oldest);
    return oldest != NULL;
}

/* Close the client connections whose caller kept them waiting too long (as app.py's
 * _ClientConnection.expired): idle, a head that does not end, a body that stopped. */
static void sweep_clients(Plane *p, double now) {
    Conn *c = p->clients.next;
    while (c) {
        Conn *next = c->next;
        if (!c->upstream && !c->out.len) {
            int expired = !c->first_byte  ? now - c->since > p->client_idle_timeout
                          : !c->head_done ? now - c->first_byte > p->header_timeout
                                          : now - c->last_byte > p->client_idle_timeout;
            if (expired) client_close(p, c);
        }
        c = next;
    }
}

static void accept_clients(Plane *p) {
    for (;;) {
        int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listening socket stays readable: stop watching it for a moment, or
                 * the loop would spin on it. Connections wait in the backlog meanwhile. */
                epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, p->listen_fd, NULL);
                p->listen_paused_until = now_monotonic() + LISTEN_PAUSE;
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->kind = KIND_CLIENT;
        c->fd = fd;
        c->since = now_monotonic();
        if (!admit(p)) {
            close(fd);
            free(c);
            continue;
        }
        link_after(&p->clients, c);
        p->nclients++;
        pthread_mutex_lock(&p->lock);
        p->accepted++;
        pthread_mutex_unlock(&p->lock);
        watch(p, c, CLIENT_EVENTS);
    }
}

static void take_table(Plane *p) {
    pthread_mutex_lock(&p->lock);
    Table *t = p->pending;
    p->pending = NULL;
    atomic_store(&p->table_ready, 0);
    pthread_mutex_unlock(&p->lock);
    if (t) {
        release_table(p->table);
        p->table = t; /* the plane holds one reference; attempts in flight their own */
    }
}

static void *run(void *arg) {
    Plane *p = arg;
    struct epoll_event events[MAX_EVENTS];
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->table_ready)) take_table(p);
        int timeout = p->busy.next ? (int)(TIMER_GRANULARITY * 1000) : -1;
        double sweep_every = p->header_timeout < p->client_idle_timeout ? p->header_timeout
                                                                        : p->client_idle_timeout;
        sweep_every = sweep_every / 4 > 1.0 ? 1.0 : sweep_every / 4 < 0.01 ? 0.01 : sweep_every / 4;
        if (p->clients.next && (timeout < 0 || timeout > (int)(sweep_every * 1000)))
            timeout = (int)(sweep_every * 1000) + 1;
        if (p->listen_paused_until) {
            if (now_monotonic() >= p->listen_paused_until) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};
                epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->listen_fd, &ev);
                p->listen_paused_until = 0;
            } else if (timeout < 0 || timeout > (int)(LISTEN_PAUSE * 1000)) {
                timeout = (int)(LISTEN_PAUSE * 1000);
            }
        }
        int n = epoll_wait(p->epoll_fd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; i++) {
            Conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (c->dead) continue; /* closed by an earlier event of this batch */
            if (c == &listen_marker) {
                accept_clients(p);
            } else if (c == &wake_marker) {
                uint64_t v;
                ssize_t r = read(p->wake_fd, &v, sizeof v);
                (void)r;
            } else if (c->kind == KIND_CLIENT) {
                if (ev & EPOLLOUT) {
                    if (client_flush(p, c) == 0) client_serve(p, c);
                } else {
                    client_readable(p, c);
                }
            } else {
                upstream_event(p, c, ev);
            }
        }
        if (p->busy.next) {
            double now = now_monotonic();
            if (now >= p->next_scan) {
                scan_deadlines(p, now);
                p->next_scan = now + TIMER_GRANULARITY;
            }
        }
        if (p->clients.next) {
            double now = now_monotonic();
            if (now >= p->next_sweep) {
                sweep_clients(p, now);
                p->next_sweep = now + sweep_every;
            }
        }
        bury(p);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Python's side                                                                         */

static void limits_free(Limits *l) {
    for (int i = 0; i < MAX_ALLOWED_HOSTS; i++) {
        free(l->allowed[i]);
        l->allowed[i] = NULL;
    }
}

static int limits_set(Limits *l, Py_ssize_t max_body, Py_ssize_t max_headers,
                      Py_ssize_t max_header_bytes, PyObject *allowed) {
    if (max_body < 0 || max_headers < 1 || max_header_bytes < 1) {
        PyErr_SetString(PyExc_ValueError, "max_body, max_headers, max_header_bytes: positive");
        return -1;
    }
    l->max_body = (size_t)max_body;
    l->max_headers = (size_t)max_headers;
    l->max_header_bytes = (size_t)max_header_bytes;
    l->nallowed = -1;
    if (allowed == Py_None) return 0;
    PyObject *seq = PySequence_Fast(allowed, "allowed_hosts: a sequence of bytes, or None");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_ALLOWED_HOSTS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many allowed hosts for the native plane");
        return -1;
    }
    l->nallowed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char *s;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(seq, i), &s, &len)) {
            Py_DECREF(seq);
            return -1;
        }
        l->allowed[i] = malloc((size_t)len + 1);
        if (!l->allowed[i]) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t j = 0; j < len; j++) l->allowed[i][j] = (char)lower((unsigned char)s[j]);
        l->allowed[i][len] = 0;
        l->allowed_len[i] = (size_t)len;
        l->nallowed++;
    }
    Py_DECREF(seq);
    return 0;
}

static int plane_init(Plane *p, PyObject *args, PyObject *kw) {
    static char *names[] = {"listen_fd", "max_body", "max_headers", "max_header_bytes",
                            "connect_timeout", "idle_timeout", "max_idle", "allowed_hosts",
                            "status_lines", "buckets", "header_timeout",
                            "client_idle_timeout", "max_clients", NULL};
    int listen_fd, max_idle;
    Py_ssize_t max_body, max_headers, max_header_bytes, max_clients = 1000;
    double connect_timeout, idle_timeout, header_timeout = 10.0, client_idle_timeout = 60.0;
    PyObject *allowed, *statuses, *buckets;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "innnddiOOO|ddn", names, &listen_fd, &max_body,
                                     &max_headers, &max_header_bytes, &connect_timeout,
                                     &idle_timeout, &max_idle, &allowed, &statuses, &buckets,
                                     &header_timeout, &client_idle_timeout, &max_clients))
        return -1;
    if (header_timeout <= 0 || client_idle_timeout <= 0 || max_clients < 1) {
        PyErr_SetString(PyExc_ValueError, "the client timeouts and max_clients: positive");
        return -1;
    }
    p->header_timeout = header_timeout;
    p->client_idle_timeout = client_idle_timeout;
    p->max_clients = (size_t)max_clients;
    if (p->epoll_fd) {
        PyErr_SetString(PyExc_RuntimeError, "a Plane is initialised once");
        return -1;
    }
    if (max_idle < 1 || connect_timeout <= 0 || idle_timeout <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_idle and the timeouts must be positive");
        return -1;
    }
    if (limits_set(&p->limits, max_body, max_headers, max_header_bytes, allowed)) return -1;
    p->links = (Slots){.size = sizeof(LinkState), .first = 16, .limit = MAX_LINK_ID};
    p->routes = (Slots){.size = sizeof(RouteStats), .first = 64, .limit = MAX_ROUTE_ID};
    p->pools = (Slots){.size = sizeof(Pool), .first = 16, .limit = MAX_LINK_ID};
    p->listen_fd = listen_fd;
    p->connect_timeout = connect_timeout;
    p->idle_timeout = idle_timeout;
    p->max_idle = max_idle;
    for (int status = 0; status < MAX_STATUS; status++) {
        PyObject *key = PyLong_FromLong(status);
        PyObject *line = key ? PyObject_GetItem(statuses, key) : NULL;
        Py_XDECREF(key);
        char *s;
        Py_ssize_t len;
        if (!line || PyBytes_AsStringAndSize(line, &s, &len)) {
            Py_XDECREF(line);
            return -1;
        }
        free(p->status_lines[status]);
        p->status_lines[status] = malloc((size_t)len + 1);
        if (!p->status_lines[status]) {
            Py_DECREF(line);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(p->status_lines[status], s, (size_t)len);
        p->status_len[status] = (size_t)len;
        Py_DECREF(line);
    }
    PyObject *seq = PySequence_Fast(buckets, "buckets: a sequence of floats");
    if (!seq) return -1;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(seq);
    if (nb > MAX_BUCKETS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many histogram buckets");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nb; i++)
        p->buckets[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
    p->nbuckets = (int)nb;
    Py_DECREF(seq);
    if (PyErr_Occurred()) return -1;
#ifdef GARDE_PLANE_TLS
    p->tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!p->tls_ctx || !SSL_CTX_set_min_proto_version(p->tls_ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_default_verify_paths(p->tls_ctx)) {
        PyErr_SetString(PyExc_OSError, "cannot set up TLS for the native data plane");
        return -1;
    }
    SSL_CTX_set_verify(p->tls_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(p->tls_ctx, SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(p->tls_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#endif
    pthread_mutex_init(&p->lock, NULL);
    p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->epoll_fd < 0 || p->wake_fd < 0 || p->notify_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};
    if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    ev.data.ptr = &wake_marker;
    epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->wake_fd, &ev);
    return 0;
}

static void wake(Plane *p) {
    uint64_t one = 1;
    ssize_t n = write(p->wake_fd, &one, sizeof one);
    (void)n;
}

static char *copy_bytes(PyObject *o, size_t *len) {
    char *s;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(o, &s, &n)) return NULL;
    char *out = malloc((size_t)n + 1);
    if (!out) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, s, (size_t)n);
    out[n] = 0;
    *len = (size_t)n;
    return out;
}

/* publish(links, routes): links are (id, family, address, port, base, head, tail); routes are
 * (id, path, action | None, link id | -1, timeout, min_try, factor, valid_until,
 * alternatives, element[, hedge link id | -1, hedge_after]). The table replaces the previous
 * one as a whole. */
static PyObject *plane_publish(Plane *p, PyObject *args) {
    PyObject *links, *routes;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &links, &PyList_Type, &routes)) return NULL;
    Table *t = calloc(1, sizeof *t);
    if (!t) return PyErr_NoMemory();
    t->refs = 1;
    Py_ssize_t nl = PyList_GET_SIZE(links), nr = PyList_GET_SIZE(routes);
    t->links = calloc((size_t)nl + 1, sizeof *t->links);
    t->routes = calloc((size_t)nr + 1, sizeof *t->routes);
    size_t slots = 16;
    while (slots < (size_t)nr * 2) slots *= 2;
    t->slots = calloc(slots, sizeof *t->slots);
    t->nslots = slots;
    if (!t->links || !t->routes || !t->slots) {
        table_free(t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nl; i++) {
        Link *l = &t->links[i];
        int family, port;
        const char *address;
        PyObject *base, *head, *tail;
        const char *server_name;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(links, i), "iisiSSSz", &l->id, &family, &address,
                              &port, &base, &head, &tail, &server_name))
            goto fail;
        if (server_name) {
#ifdef GARDE_PLANE_TLS
            if (!(l->server_name = strdup(server_name))) {
                PyErr_NoMemory();
                goto fail;
            }
#else
            PyErr_SetString(PyExc_ValueError, "this native data plane was built without TLS");
            goto fail;
#endif
        }
        t->nlinks = (int)i + 1;
        if (l->id < 0 || l->id >= MAX_LINK_ID) {
            PyErr_SetString(PyExc_ValueError, "link id out of range");
            goto fail;
        }
        if (family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
            a->sin_family = AF_INET;
            a->sin_port = htons((uint16_t)port);
            if (inet_pton(AF_INET, address, &a->sin_addr) != 1) goto bad_address;
            l->addrlen = sizeof *a;
        } else if (family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->addr;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons((uint16_t)port);
            if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1) goto bad_address;
            l->addrlen = sizeof *a;
        } else {
            goto bad_address;
        }
        if (!(l->base = copy_bytes(base, &l->base_len)) ||
            !(l->head = copy_bytes(head, &l->head_len)) ||
            !(l->tail = copy_bytes(tail, &l->tail_len)))
            goto fail;
        if (l->head_len < 2) {
            PyErr_SetString(PyExc_ValueError, "a link's head ends with CRLF");
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < nr; i++) {
        Route *r = &t->routes[i];
        PyObject *path, *action, *element;
        int link_id;
        int hedge_id = -1;
        r->hedge_after = 0;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(routes, i), "iSOiddddpS|id", &r->id, &path,
                              &action, &link_id, &r->timeout, &r->min_try, &r->factor,
                              &r->valid_until, &r->alternatives, &element, &hedge_id,
                              &r->hedge_after))
            goto fail;
        t->nroutes = (int)i + 1;
        if (r->id < 0 || r->id >= MAX_ROUTE_ID) {
            PyErr_SetString(PyExc_ValueError, "route id out of range");
            goto fail;
        }
        if (!(r->path = copy_bytes(path, &r->path_len))) goto fail;
        if (!(r->element = copy_bytes(element, &r->element_len))) goto fail;
        if (action != Py_None && !(r->action = copy_bytes(action, &r->action_len))) goto fail;
        r->link = -1;
        r->hedge_link = -1;
        for (int j = 0; j < t->nlinks; j++) {
            if (t->links[j].id == link_id) r->link = j;
            if (t->links[j].id == hedge_id) r->hedge_link = j;
        }
        if ((link_id >= 0 && r->link < 0) || (hedge_id >= 0 && r->hedge_link < 0)) {
            PyErr_SetString(PyExc_ValueError, "a route names a link the table lacks");
            goto fail;
        }
        if (r->hedge_link == r->link) r->hedge_link = -1; /* a hedge goes elsewhere */
        uint64_t h = route_hash(r->path, r->path_len, r->action, r->action_len, r->action != NULL);
        size_t mask = slots - 1, k = h & mask;
        while (t->slots[k]) {
            Route *other = &t->routes[t->slots[k] - 1];
            if (other->path_len == r->path_len && !memcmp(other->path, r->path, r->path_len) &&
                (other->action != NULL) == (r->action != NULL) &&
                (!r->action ||
                 (other->action_len == r->action_len &&
                  !memcmp(other->action, r->action, r->action_len)))) {
                PyErr_SetString(PyExc_ValueError, "two routes with the same path and action");
                goto fail;
            }
            k = (k + 1) & mask;
        }
        t->slots[k] = (int)i + 1;
    }
    pthread_mutex_lock(&p->lock);
    Table *old = p->pending;
    p->pending = t;
    atomic_store(&p->table_ready, 1);
    pthread_mutex_unlock(&p->lock);
    if (old) table_free(old); /* never taken by the thread: nothing refers to it */
    wake(p);
    Py_RETURN_NONE;
bad_address:
    PyErr_SetString(PyExc_ValueError, "a link's address is not a numeric IPv4 or IPv6 address");
fail:
    table_free(t);
    return NULL;
}

static PyObject *plane_start(Plane *p, PyObject *unused) {
    if (!p->epoll_fd) {
        PyErr_SetString(PyExc_RuntimeError, "the Plane is not initialised");
        return NULL;
    }
    if (p->started) Py_RETURN_NONE;
    if (atomic_load(&p->stop)) {
        PyErr_SetString(PyExc_RuntimeError, "a stopped Plane does not start again");
        return NULL;
    }
    int err = pthread_create(&p->thread, NULL, run, p);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    p->started = 1;
    Py_RETURN_NONE;
}

/* drain() -> (hand-overs, events, links, routes), everything since the previous drain:
 * hand-overs (fd, bytes read, general), events (link, successes before, key, reason),
 * links (id, successes, latency), routes (id, forwarded, buckets, seconds).
 * What is shared is copied out under the lock, and Python objects made after it: making
 * them may run the garbage collector, and with it any Python code. */
typedef struct {
    int id;
    LinkState state;
} LinkCopy;

typedef struct {
    int id;
    RouteStats stats;
} RouteCopy;

static PyObject *plane_drain(Plane *p, PyObject *unused) {
    uint64_t v;
    ssize_t got = read(p->notify_fd, &v, sizeof v);
    (void)got;
    pthread_mutex_lock(&p->lock);
    p->notified = 0;
    Handover *handovers = p->handovers;
    size_t nhandovers = p->nhandovers;
    p->handovers = NULL;
    p->nhandovers = p->cap_handovers = 0;
    Event *events = p->events_q;
    size_t nevents = p->nevents;
    p->events_q = NULL;
    p->nevents = p->cap_events = 0;
    size_t nlinks = 0, nroutes = 0;
    LinkState *states = (LinkState *)p->links.data;
    RouteStats *stats = (RouteStats *)p->routes.data;
    for (int i = 0; i < p->links.n; i++) nlinks += states[i].dirty != 0;
    for (int i = 0; i < p->routes.n; i++) nroutes += stats[i].dirty != 0;
    LinkCopy *links = calloc(nlinks + 1, sizeof *links);
    RouteCopy *routes = calloc(nroutes + 1, sizeof *routes);
    if (links && routes) {
        size_t k = 0;
        for (int i = 0; i < p->links.n; i++) {
            if (!states[i].dirty) continue;
            links[k].id = i;
            links[k++].state = states[i];
            states[i].ok_pending = 0;
            states[i].dirty = 0;
        }
        k = 0;
        for (int i = 0; i < p->routes.n; i++) {
            if (!stats[i].dirty) continue;
            routes[k].id = i;
            routes[k++].stats = stats[i];
            memset(&stats[i], 0, sizeof stats[i]);
        }
    } else {
        nlinks = nroutes = 0; /* left for the next drain */
    }
    int nbuckets = p->nbuckets;
    pthread_mutex_unlock(&p->lock);

    PyObject *out_h = PyList_New(0), *out_e = PyList_New(0), *out_l = PyList_New(0),
             *out_r = PyList_New(0);
    int failed = !out_h || !out_e || !out_l || !out_r || !links || !routes;
    for (size_t i = 0; i < nhandovers; i++) {
        Handover *h = &handovers[i];
        PyObject *item = failed ? NULL
                                : Py_BuildValue("(iy#O)", h->fd, h->data ? h->data : "",
                                                (Py_ssize_t)h->len,
                                                h->general ? Py_True : Py_False);
        if (!item || PyList_Append(out_h, item)) {
            failed = 1;
            close(h->fd); /* nobody will serve it */
        }
        Py_XDECREF(item);
        free(h->data);
    }
    for (size_t i = 0; i < nevents && !failed; i++) {
        Event *e = &events[i];
        PyObject *item = Py_BuildValue("(iKss)", e->link, (unsigned long long)e->ok_before,
                                       e->key, e->reason);
        failed = !item || PyList_Append(out_e, item);
        Py_XDECREF(item);
    }
    for (size_t i = 0; i < nlinks && !failed; i++) {
        PyObject *item = Py_BuildValue("(iKd)", links[i].id,
                                       (unsigned long long)links[i].state.ok_pending,
                                       links[i].state.latency);
        failed = !item || PyList_Append(out_l, item);
        Py_XDECREF(item);
    }
    for (size_t i = 0; i < nroutes && !failed; i++) {
        RouteStats *rs = &routes[i].stats;
        PyObject *hist = PyTuple_New(nbuckets + 1), *hedged = PyTuple_New(nbuckets + 1);
        for (int b = 0; hist && hedged && b <= nbuckets; b++) {
            PyObject *count = PyLong_FromUnsignedLongLong(rs->hist[b]);
            PyObject *by_hedge = PyLong_FromUnsignedLongLong(rs->hedged[b]);
            if (!count || !by_hedge) {
                Py_XDECREF(count);
                Py_XDECREF(by_hedge);
                Py_CLEAR(hist);
                break;
            }
            PyTuple_SET_ITEM(hist, b, count);
            PyTuple_SET_ITEM(hedged, b, by_hedge);
        }
        if (!hist) Py_CLEAR(hedged);
        if (!hedged) Py_CLEAR(hist);
        PyObject *item = hist ? Py_BuildValue("(iKNdN)", routes[i].id,
                                              (unsigned long long)rs->forwarded, hist, rs->sum,
                                              hedged)
                              : NULL;
        failed = !item || PyList_Append(out_r, item);
        Py_XDECREF(item);
    }
    free(handovers);
    free(events);
    free(links);
    free(routes);
    if (!failed) return Py_BuildValue("(NNNN)", out_h, out_e, out_l, out_r);
    Py_XDECREF(out_h);
    Py_XDECREF(out_e);
    Py_XDECREF(out_l);
    Py_XDECREF(out_r);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return NULL;
}

static PyObject *plane_counters(Plane *p, PyObject *unused) {
    pthread_mutex_lock(&p->lock);
    unsigned long long accepted = p->accepted, served = p->served, handed = p->handed_over;
    unsigned long long capped = p->cap_reached, hedged = p->hedged;
    pthread_mutex_unlock(&p->lock);
    return Py_BuildValue("{sKsKsKsKsK}", "accepted", accepted, "served", served, "handed_over",
                         handed, "cap_reached", capped, "hedged", hedged);
}

static void close_everything(Plane *p) {
    /* After the thread ended: every connection it held (not the listening socket). */
    while (p->busy.next) attempt_failed(p, p->busy.next, NULL, NULL);
    for (int i = 0; i < p->pools.n; i++) {
        Pool *pool = (Pool *)p->pools.data + i;
        while (pool->n) upstream_close(p, pool->idle[pool->n - 1]);
        free(pool->idle);
        pool->idle = NULL;
    }
    while (p->clients.next) client_close(p, p->clients.next);
    bury(p);
    /* Hand-overs Python never took: their connections are closed. */
    for (size_t i = 0; i < p->nhandovers; i++) {
        close(p->handovers[i].fd);
        free(p->handovers[i].data);
    }
    p->nhandovers = 0;
}

static PyObject *plane_stop(Plane *p, PyObject *unused) {
    if (p->started) {
        p->started = 0; /* before the GIL is let go: a second stop() joins nothing */
        atomic_store(&p->stop, 1);
        wake(p);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(p->thread, NULL);
        Py_END_ALLOW_THREADS
        close_everything(p);
    }
    Py_RETURN_NONE;
}

static PyObject *plane_get_notify_fd(Plane *p, void *closure) { return PyLong_FromLong(p->notify_fd); }

static PyObject *plane_get_clients(Plane *p, void *closure) {
    return PyLong_FromSize_t(atomic_load(&p->nclients));
}

static void plane_dealloc(Plane *p) {
    if (p->started) {
        atomic_store(&p->stop, 1);
        wake(p);
        pthread_join(p->thread, NULL);
        p->started = 0;
    }
    if (p->epoll_fd > 0) close_everything(p);
    if (p->epoll_fd > 0) close(p->epoll_fd);
    if (p->wake_fd > 0) close(p->wake_fd);
    if (p->notify_fd > 0) close(p->notify_fd);
    release_table(p->table);
    table_free(p->pending);
    free(p->handovers);
    free(p->events_q);
    free(p->pools.data);
    free(p->links.data);
    free(p->routes.data);
    for (int i = 0; i < MAX_STATUS; i++) free(p->status_lines[i]);
    limits_free(&p->limits);
#ifdef GARDE_PLANE_TLS
    if (p->tls_ctx) SSL_CTX_free(p->tls_ctx);
#endif
    if (p->epoll_fd > 0) pthread_mutex_destroy(&p->lock);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

/* ------------------------------------------------------------------------------------ */
/* The parsers alone, for tests: the same code the plane runs, on bytes Python gives.      */

/* [(name, value), ...] for Python; NULL with an exception set if memory is short. */
static PyObject *fields_list(const Field *f, size_t n) {
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *h = Py_BuildValue("(y#y#)", f[i].name, (Py_ssize_t)f[i].name_len, f[i].value,
                                    (Py_ssize_t)f[i].value_len);
        if (!h || PyList_Append(list, h)) Py_CLEAR(list);
        Py_XDECREF(h);
    }
    return list;
}

/* None (more bytes needed) or False (Python's to serve) for what is not PARSE_OK. */
static PyObject *declined(int parsed) {
    return Py_NewRef(parsed == PARSE_MORE ? Py_None : Py_False);
}

static PyObject *py_read_request(PyObject *m, PyObject *args, PyObject *kw) {
    static char *names[] = {"data", "max_body", "max_headers", "max_header_bytes",
                            "allowed_hosts", NULL};
    Py_buffer data;
    Py_ssize_t max_body = 4 << 20, max_headers = 100, max_header_bytes = 16384;
    PyObject *allowed = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|nnnO", names, &data, &max_body,
                                     &max_headers, &max_header_bytes, &allowed))
        return NULL;
    Limits limits = {0};
    if (limits_set(&limits, max_body, max_headers, max_header_bytes, allowed)) {
        limits_free(&limits);
        PyBuffer_Release(&data);
        return NULL;
    }
    Request *r = malloc(sizeof *r);
    PyObject *out = NULL;
    if (!r) {
        PyErr_NoMemory();
        goto done;
    }
    size_t scanned = 0;
    int parsed = parse_request(&limits, data.buf, (size_t)data.len, &scanned, r);
    if (parsed != PARSE_OK) {
        out = declined(parsed);
    } else {
        PyObject *fwd = fields_list(r->fwd, r->nfwd);
        const char *body = (const char *)data.buf + r->head_len;
        if (fwd) {
            PyObject *action = r->has_action
                                   ? PyBytes_FromStringAndSize(r->action, (Py_ssize_t)r->action_len)
                                   : Py_NewRef(Py_None);
            out = action ? Py_BuildValue("{sy#sy#sNsOsNsy#sn}", "target", r->target,
                                         (Py_ssize_t)r->target_len, "path", r->target,
                                         (Py_ssize_t)r->path_len, "action", action,
                                         "keep_alive", r->keep_alive ? Py_True : Py_False,
                                         "forward", fwd, "body", body,
                                         (Py_ssize_t)r->body_len, "length",
                                         (Py_ssize_t)(r->head_len + r->body_len))
                         : NULL;
            if (!out) Py_DECREF(fwd);
        }
    }
done:
    free(r);
    limits_free(&limits);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *py_read_response(PyObject *m, PyObject *args, PyObject *kw) {
    static char *names[] = {"data", "eof", NULL};
    Py_buffer data;
    int eof = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|p", names, &data, &eof)) return NULL;
    Response *r = malloc(sizeof *r);
    PyObject *out = NULL;
    if (!r) {
        PyErr_NoMemory();
        goto done;
    }
    int parsed = parse_response(data.buf, (size_t)data.len, eof, r);
    if (parsed != PARSE_OK) {
        out = declined(parsed);
    } else {
        PyObject *headers = fields_list(r->h, r->nh);
        out = headers ? Py_BuildValue("{sisNsy#sOsOsn}", "status", r->status, "headers",
                                      headers, "body", r->body, (Py_ssize_t)r->body_len,
                                      "keep_alive", r->keep_alive ? Py_True : Py_False,
                                      "server_failure",
                                      server_failure(r->status, r->body, r->body_len) ? Py_True
                                                                                      : Py_False,
                                      "length", (Py_ssize_t)r->wire_len)
                      : NULL;
    }
    buf_free(&r->decoded);
done:
    free(r);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *py_envelope_refused(PyObject *m, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE)) return NULL;
    int refused = envelope_refused(data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyBool_FromLong(refused);
}

static PyObject *py_first_body_child(PyObject *m, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE)) return NULL;
    size_t len = 0;
    const char *found = first_body_child(data.buf, (size_t)data.len, &len);
    PyObject *out = found ? PyBytes_FromStringAndSize(found, (Py_ssize_t)len) : Py_NewRef(Py_None);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef module_methods[] = {
    {"first_body_child", (PyCFunction)py_first_body_child, METH_O,
     "first_body_child(body) -> soapxml.first_body_child(body), as the plane reads it."},
    {"read_request", (PyCFunction)(void (*)(void))py_read_request, METH_VARARGS | METH_KEYWORDS,
     "read_request(data, ...) -> None (more bytes needed), False (Python's to serve) or what"
     " the plane read: target, path, action, keep_alive, forward, body, length."},
    {"read_response", (PyCFunction)(void (*)(void))py_read_response,
     METH_VARARGS | METH_KEYWORDS,
     "read_response(data, eof=False) -> None, False, or status, headers kept, body,"
     " keep_alive, server_failure, length."},
    {"envelope_refused", (PyCFunction)py_envelope_refused, METH_O,
     "envelope_refused(body) -> whether soapxml.check_envelope would refuse it."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef plane_methods[] = {
    {"publish", (PyCFunction)plane_publish, METH_VARARGS,
     "publish(links, routes): replace the routing table as a whole."},
    {"start", (PyCFunction)plane_start, METH_NOARGS, "Start the plane's thread."},
    {"drain", (PyCFunction)plane_drain, METH_NOARGS,
     "drain() -> (handovers, events, links, routes) since the previous drain."},
    {"counters", (PyCFunction)plane_counters, METH_NOARGS, "Totals since the start."},
    {"stop", (PyCFunction)plane_stop, METH_NOARGS,
     "Stop the thread and close every connection it holds (not the listening socket)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *plane_get_python_clients(Plane *p, void *closure) {
    return PyLong_FromSize_t(atomic_load(&p->python_clients));
}

static int plane_set_python_clients(Plane *p, PyObject *value, void *closure) {
    size_t n = value ? PyLong_AsSize_t(value) : (size_t)-1;
    if (n == (size_t)-1 && PyErr_Occurred()) return -1;
    atomic_store(&p->python_clients, n);
    return 0;
}

static PyObject *plane_get_hedge_credits(Plane *p, void *closure) {
    return PyLong_FromLong(atomic_load(&p->hedge_credits));
}

static int plane_set_hedge_credits(Plane *p, PyObject *value, void *closure) {
    long n = value ? PyLong_AsLong(value) : -1;
    if (n == -1 && PyErr_Occurred()) return -1;
    atomic_store(&p->hedge_credits, n < 0 ? 0 : n);
    return 0;
}

static PyGetSetDef plane_getset[] = {
    {"hedge_credits", (getter)plane_get_hedge_credits, (setter)plane_set_hedge_credits,
     "Hedges the plane may send before Python says again (the hedge budget's share).", NULL},
    {"python_clients", (getter)plane_get_python_clients, (setter)plane_set_python_clients,
     "Client connections Python holds (set by Python): they count for max_clients.", NULL},
    {"notify_fd", (getter)plane_get_notify_fd, NULL,
     "Readable when hand-overs or failures wait in drain().", NULL},
    {"clients", (getter)plane_get_clients, NULL, "Client connections served natively.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PlaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "garde.gateway._plane.Plane",
    .tp_basicsize = sizeof(Plane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The gateway's native data plane for one listening socket.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)plane_init,
    .tp_dealloc = (destructor)plane_dealloc,
    .tp_methods = plane_methods,
    .tp_getset = plane_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_plane", "garde's native data plane (see docs/gateway-data-plane.md).",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit__plane(void) {
    if (PyType_Ready(&PlaneType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "MAX_ALLOWED_HOSTS", MAX_ALLOWED_HOSTS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "TLS",
#ifdef GARDE_PLANE_TLS
                                1
#else
                                0
#endif
                                ) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&PlaneType);
    if (PyModule_AddObject(m, "Plane", (PyObject *)&PlaneType) < 0) {
        Py_DECREF(&PlaneType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
