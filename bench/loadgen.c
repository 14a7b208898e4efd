/*
 * wsocket benchmark load generator, and a minimal C echo server: the ceiling.
 *
 * One thread, epoll, non-blocking sockets. Opens N WebSocket connections to
 * ws://HOST:PORT/PATH, does the handshake (checks the accept key), then keeps
 * DEPTH messages in flight on each connection: every echo that comes back is
 * timed (send -> whole echo received) and replaced by a new message. Frames
 * are built once (masked with one key) and written straight from a buffer,
 * so the generator spends its time in send/recv/epoll, not on the payload.
 *
 * Prints one line of JSON on stdout, the result, after event lines (JSON
 * with an "event" key) that mark the measured window's start and end (or,
 * with --idle, that all connections are open); bench/loadgen.py has the same
 * command line and output and is used when no C compiler is present.
 *
 *   loadgen --port P [--host 127.0.0.1] [--path /] [--connections N]
 *           [--depth K] [--size BYTES] [--kind text|binary|json]
 *           [--duration S] [--warmup S] [--deflate FILE] [--timeout S]
 *           [--concurrency C]   handshakes under way at once (default 64)
 *           [--idle]        open N connections, print {"event":"connected"...},
 *                           wait for a line on stdin, then one echo each,
 *                           counting those answered within --reply-timeout S
 *                           (default 30)
 *   loadgen --serve [--port P] [--broadcast]
 *                  echo server, prints "READY PORT": one thread, epoll, RFC 6455
 *                  framing (unmask, send back unmasked, pong to ping, close
 *                  answered) and no checks (no UTF-8, no limits, no extensions).
 *                  The generator's calibration peer, and in python -m bench the
 *                  ceiling "c-epoll-echo": what the kernel's sockets cost alone.
 *                  --broadcast sends each data frame to every open connection.
 *
 * --deflate FILE offers permessage-deflate (client_no_context_takeover) and,
 * when the server accepts, sends FILE's bytes (the raw-deflated payload,
 * made by bench/scenarios.py) with RSV1 set. Replies are counted, not inflated.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- utilities */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *message) {
    fprintf(stderr, "loadgen: %s\n", message);
    exit(2);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* SHA-1 (RFC 3174), only for the handshake's accept key. */
typedef struct { uint32_t h[5]; uint64_t len; unsigned char block[64]; size_t used; } sha1_ctx;

#define ROL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

static void sha1_block(sha1_ctx *c, const unsigned char *p) {
    uint32_t w[80], a, b, d, e, f, k, t, cc;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4];
    for (int i = 0; i < 80; i++) {
        if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
        else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
        t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = cc; cc = ROL(b, 30); b = a; a = t;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void sha1(const unsigned char *data, size_t n, unsigned char out[20]) {
    sha1_ctx c = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    c.len = n * 8;
    while (n >= 64) { sha1_block(&c, data); data += 64; n -= 64; }
    memcpy(c.block, data, n);
    c.block[n++] = 0x80;
    if (n > 56) { memset(c.block + n, 0, 64 - n); sha1_block(&c, c.block); n = 0; }
    memset(c.block + n, 0, 56 - n);
    for (int i = 0; i < 8; i++) c.block[56 + i] = (unsigned char)(c.len >> (56 - 8 * i));
    sha1_block(&c, c.block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = c.h[i] >> 24; out[4 * i + 1] = c.h[i] >> 16;
        out[4 * i + 2] = c.h[i] >> 8; out[4 * i + 3] = c.h[i];
    }
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, j = 0;
    for (i = 0; i + 2 < n; i += 3) {
        out[j++] = t[in[i] >> 2];
        out[j++] = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[j++] = t[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[j++] = t[in[i + 2] & 63];
    }
    if (i < n) {
        out[j++] = t[in[i] >> 2];
        if (i + 1 < n) {
            out[j++] = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            out[j++] = t[(in[i + 1] & 15) << 2];
        } else {
            out[j++] = t[(in[i] & 3) << 4];
            out[j++] = '=';
        }
        out[j++] = '=';
    }
    out[j] = 0;
}

static void accept_key(const char *key, char out[29]) {
    char buf[128];
    unsigned char digest[20];
    snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    sha1((const unsigned char *)buf, strlen(buf), digest);
    base64(digest, 20, out);
}

/* Frame header into out (returns its length); mask may be NULL. */
static size_t frame_header(unsigned char *out, int first_byte, uint64_t n, const unsigned char *mask) {
    size_t h = 0;
    int m = mask ? 0x80 : 0;
    out[h++] = (unsigned char)first_byte;
    if (n < 126) out[h++] = (unsigned char)(m | n);
    else if (n < 65536) { out[h++] = m | 126; out[h++] = n >> 8; out[h++] = n & 255; }
    else { out[h++] = m | 127; for (int i = 7; i >= 0; i--) out[h++] = (n >> (8 * i)) & 255; }
    if (mask) { memcpy(out + h, mask, 4); h += 4; }
    return h;
}

/* ---------------------------------------------------------------- latency histogram */
/* 1 us buckets to 10 ms, 10 us to 1 s, 1 ms to 100 s. */
#define H1 10000
#define H2 100000
#define H3 100000
static uint64_t hist[H1 + H2 + H3 + 1];
static uint64_t hist_count;

static void hist_add(uint64_t ns) {
    uint64_t us = ns / 1000;
    size_t i;
    if (us < 10000) i = us;
    else if (us < 1000000) i = H1 + (us - 10000) / 10;
    else if (us < 100000000) i = H1 + H2 + (us - 1000000) / 1000;
    else i = H1 + H2 + H3;
    if (i > H1 + H2 + H3) i = H1 + H2 + H3;
    hist[i]++;
    hist_count++;
}

static double hist_value(size_t i) {  /* the middle of bucket i, in us */
    if (i < H1) return i + 0.5;
    if (i < H1 + H2) return 10000 + (i - H1) * 10 + 5;
    if (i < H1 + H2 + H3) return 1000000 + (double)(i - H1 - H2) * 1000 + 500;
    return 100000000;
}

static double hist_percentile(double p) {
    if (!hist_count) return -1;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)hist_count);
    if (rank >= hist_count) rank = hist_count - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i <= H1 + H2 + H3; i++) {
        seen += hist[i];
        if (seen > rank) return hist_value(i);
    }
    return -1;
}

/* ---------------------------------------------------------------- the client */

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DONE };

typedef struct conn {
    int fd, state, id;
    char key[32];
    char hs[4096];           /* handshake response */
    size_t hs_len;
    char req[512];           /* the handshake request */
    size_t req_len, req_off; /* its length, bytes of it written */
    /* sending */
    uint64_t to_send;        /* messages queued, not yet started */
    const unsigned char *out;
    size_t out_left;
    int want_out;
    /* messages in flight: their send times, a ring of DEPTH */
    uint64_t *ts;
    unsigned head, count;
    /* frame parser */
    unsigned char hdr[14];
    int hdr_len, hdr_need;
    uint64_t left;           /* payload bytes of the current frame still to come */
    int in_payload, opcode, fin, control;
    unsigned char ctrl[128];
    size_t ctrl_len;
    int deflate;
} conn;

static struct {
    const char *host, *path, *kind, *deflate_file;
    int port, connections, depth, idle, serve, concurrency, broadcast;
    size_t size;
    double duration, warmup, timeout, reply_timeout;
} opt = {"127.0.0.1", "/", "text", NULL, 0, 1, 1, 0, 0, 64, 0, 32, 5.0, 1.0, 60.0, 30.0};

static conn *conns;
static int epfd;
static unsigned char *batch, *batch_deflate;  /* DEPTH copies of the frame */
static size_t frame_len, frame_len_deflate;
static unsigned char mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

static uint64_t t_start, t_measure, t_end;   /* ns */
static int sending = 1, measuring = 0;
static uint64_t messages, errors, unexpected, bad_handshakes, deflate_ok;
static int open_count, done_count, started, in_handshake;
static char last_error[200] = "";

static void note_error(conn *c, const char *what) {
    errors++;
    if (!last_error[0]) snprintf(last_error, sizeof last_error, "connection %d: %s", c->id, what);
}

static void conn_close(conn *c) {
    if (c->state == C_DONE) return;
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) in_handshake--;
    if (c->state == C_OPEN || c->state == C_CLOSING) open_count--;
    c->state = C_DONE;
    done_count++;
    close(c->fd);
}

static void arm(conn *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

static unsigned char *make_payload(size_t n, const char *kind) {
    unsigned char *p = malloc(n ? n : 1);
    if (!strcmp(kind, "binary")) {
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; p[i] = x; }
    } else if (!strcmp(kind, "json")) {
        static const char *item = "{\"id\": 12345, \"user\": \"alice\", \"text\": \"hello world\", \"tags\": [\"a\", \"b\"]}, ";
        size_t m = strlen(item);
        for (size_t i = 0; i < n; i++) p[i] = item[i % m];
    } else {
        for (size_t i = 0; i < n; i++) p[i] = 'a' + i % 26;
    }
    return p;
}

static unsigned char *build_batch(int opcode_byte, const unsigned char *payload, size_t n, size_t *flen) {
    unsigned char hdr[14];
    size_t h = frame_header(hdr, opcode_byte, n, mask_key);
    *flen = h + n;
    unsigned char *b = malloc(*flen * (size_t)opt.depth);
    memcpy(b, hdr, h);
    for (size_t i = 0; i < n; i++) b[h + i] = payload[i] ^ mask_key[i & 3];
    for (int k = 1; k < opt.depth; k++) memcpy(b + k * *flen, b, *flen);
    return b;
}

static void send_control(conn *c, int opcode, const unsigned char *data, size_t n) {
    unsigned char f[14 + 125];
    size_t h = frame_header(f, 0x80 | opcode, n, mask_key);
    for (size_t i = 0; i < n; i++) f[h + i] = data[i] ^ mask_key[i & 3];
    /* A control frame must not cut into a data frame being written. */
    if (c->out_left) return;  /* rare: skip (only pongs and our close) */
    ssize_t w = send(c->fd, f, h + n, MSG_NOSIGNAL);
    (void)w;
}

static void pump_out(conn *c, uint64_t now) {
    for (;;) {
        if (!c->out_left) {
            if (!c->to_send || !sending) break;
            unsigned k = c->to_send < (uint64_t)opt.depth ? (unsigned)c->to_send : (unsigned)opt.depth;
            c->out = c->deflate ? batch_deflate : batch;
            c->out_left = k * (c->deflate ? frame_len_deflate : frame_len);
            c->to_send -= k;
            for (unsigned i = 0; i < k; i++) {
                c->ts[(c->head + c->count) % opt.depth] = now;
                c->count++;
            }
        }
        ssize_t w = send(c->fd, c->out, c->out_left, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { arm(c, 1); return; }
            note_error(c, strerror(errno));
            conn_close(c);
            return;
        }
        c->out += w;
        c->out_left -= (size_t)w;
    }
    arm(c, 0);
}

static void on_message(conn *c, uint64_t now) {
    if (!c->count) { unexpected++; return; }
    uint64_t sent = c->ts[c->head];
    c->head = (c->head + 1) % opt.depth;
    c->count--;
    if (measuring && now <= t_end) {
        messages++;
        hist_add(now - sent);
    }
    if (sending && !opt.idle) c->to_send++;
}

static void on_frame_done(conn *c, uint64_t now) {
    int op = c->opcode;
    if (op == 0 || op == 1 || op == 2) {
        if (c->fin) on_message(c, now);
    } else if (op == 9) {
        send_control(c, 0xA, c->ctrl, c->ctrl_len);
    } else if (op == 8) {
        if (c->state == C_OPEN) {
            unsigned char code[2] = {0x03, 0xe8};
            send_control(c, 0x8, code, 2);
            if (sending) note_error(c, "server closed the connection");
        }
        conn_close(c);
    }
}

/* Feed received bytes to the frame parser of c. */
static void parse(conn *c, const unsigned char *p, size_t n, uint64_t now) {
    const unsigned char *end = p + n;
    while (p < end && c->state != C_DONE) {
        if (!c->in_payload) {
            while (c->hdr_len < c->hdr_need && p < end) c->hdr[c->hdr_len++] = *p++;
            if (c->hdr_len < c->hdr_need) return;
            if (c->hdr_need == 2) {
                int l = c->hdr[1] & 127;
                int extra = (l == 126 ? 2 : l == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
                if (extra) { c->hdr_need += extra; continue; }
            }
            int l = c->hdr[1] & 127;
            uint64_t len = l;
            if (l == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (l == 127) { len = 0; for (int i = 0; i < 8; i++) len = len << 8 | c->hdr[2 + i]; }
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 15;
            c->control = c->opcode >= 8;
            c->left = len;
            c->ctrl_len = 0;
            c->in_payload = 1;
            c->hdr_len = 0;
            c->hdr_need = 2;
            if (c->control && len > 125) { note_error(c, "control frame too long"); conn_close(c); return; }
        }
        size_t take = (size_t)((uint64_t)(end - p) < c->left ? (uint64_t)(end - p) : c->left);
        if (c->control) { memcpy(c->ctrl + c->ctrl_len, p, take); c->ctrl_len += take; }
        p += take;
        c->left -= take;
        if (!c->left) { c->in_payload = 0; on_frame_done(c, now); }
    }
}

static void start_connect(conn *c) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { c->state = C_DONE; done_count++; note_error(c, strerror(errno)); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_CONNECTING;
    in_handshake++;
    started++;
    int r = connect(c->fd, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno != EINPROGRESS) { note_error(c, strerror(errno)); conn_close(c); return; }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = 1;
}

static void handshake_write(conn *c) {
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { note_error(c, strerror(err)); conn_close(c); return; }
        c->state = C_HANDSHAKE;
    }
    if (!c->req_len) {
        unsigned char raw[16];
        for (int i = 0; i < 16; i++) raw[i] = (unsigned char)(rand() & 255);
        base64(raw, 16, c->key);
        c->req_len = (size_t)snprintf(c->req, sizeof c->req,
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
            opt.path, opt.host, opt.port, c->key,
            opt.deflate_file ? "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" : "");
    }
    ssize_t w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN) return;
        note_error(c, strerror(errno)); conn_close(c); return;
    }
    c->req_off += (size_t)w;
    if (c->req_off == c->req_len) arm(c, 0);
}

static void handshake_read(conn *c, uint64_t now) {
    ssize_t r = recv(c->fd, c->hs + c->hs_len, sizeof c->hs - 1 - c->hs_len, 0);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        note_error(c, r ? strerror(errno) : "closed during the handshake");
        bad_handshakes++;
        conn_close(c);
        return;
    }
    c->hs_len += (size_t)r;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hs_len >= sizeof c->hs - 1) { note_error(c, "handshake reply too long"); conn_close(c); }
        return;
    }
    *end = 0;
    char expect[29];
    accept_key(c->key, expect);
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0 || !strcasestr(c->hs, expect)) {
        char line[80];
        snprintf(line, sizeof line, "handshake refused: %.60s", c->hs);
        char *nl = strchr(line, '\r');
        if (nl) *nl = 0;
        note_error(c, line);
        bad_handshakes++;
        conn_close(c);
        return;
    }
    char *ext = strcasestr(c->hs, "\r\nSec-WebSocket-Extensions:");
    c->deflate = opt.deflate_file && ext && strcasestr(ext, "permessage-deflate");
    if (c->deflate) deflate_ok++;
    c->state = C_OPEN;
    in_handshake--;
    open_count++;
    size_t head = (size_t)(end + 4 - c->hs);
    if (c->hs_len > head) parse(c, (unsigned char *)c->hs + head, c->hs_len - head, now);
}

static void handle_readable(conn *c, uint64_t now) {
    static unsigned char buf[1 << 18];
    for (int loops = 0; loops < 8 && c->state != C_DONE; loops++) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (sending) note_error(c, strerror(errno));
            conn_close(c);
            return;
        }
        if (r == 0) {
            if (sending && c->state == C_OPEN) note_error(c, "server closed the connection");
            conn_close(c);
            return;
        }
        parse(c, buf, (size_t)r, now);
        if ((size_t)r < sizeof buf) return;
    }
}

static void run_loop_until(int (*done)(void), uint64_t deadline) {
    struct epoll_event events[512];
    for (;;) {
        uint64_t now = now_ns();
        if (done() || now >= deadline) return;
        if (measuring == 0 && t_measure && now >= t_measure) { measuring = 1; }
        while (started < opt.connections && in_handshake < opt.concurrency) start_connect(&conns[started]);
        int timeout_ms = (int)((deadline - now) / 1000000) + 1;
        if (timeout_ms > 20) timeout_ms = 20;
        int n = epoll_wait(epfd, events, 512, timeout_ms);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {  /* stdin */
                char line[64];  /* a line (or end of file) on stdin: "go" */
                ssize_t r = read(0, line, sizeof line);
                (void)r;
                epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
                t_measure = 1;
                continue;
            }
            if (c->state == C_DONE) continue;
            if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
                if (events[i].events & EPOLLOUT) handshake_write(c);
                if (c->state == C_HANDSHAKE && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    handshake_read(c, now);
                if (c->state == C_CONNECTING && (events[i].events & (EPOLLHUP | EPOLLERR))) {
                    note_error(c, "connection refused"); conn_close(c);
                }
                if (c->state == C_OPEN && !opt.idle && t_measure) { c->to_send = opt.depth; pump_out(c, now); }
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) handle_readable(c, now);
            if (c->state == C_OPEN && (events[i].events & EPOLLOUT || c->to_send)) pump_out(c, now);
        }
    }
}

static int all_started_settled(void) {
    return started == opt.connections && in_handshake == 0;
}
static int never(void) { return 0; }
static int go_given(void) { return t_measure == 1; }
static int all_echoed(void) {
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == C_OPEN && (conns[i].count || conns[i].to_send)) return 0;
    return 1;
}
static int all_done(void) { return done_count == opt.connections; }

static void close_all(void) {
    sending = 0;
    unsigned char code[2] = {0x03, 0xe8};
    for (int i = 0; i < opt.connections; i++) {
        conn *c = &conns[i];
        if (c->state == C_OPEN && c->out_left) {
            conn_close(c);  /* in the middle of a frame: no room for a close frame */
        } else if (c->state == C_OPEN) {
            send_control(c, 0x8, code, 2);
            c->state = C_CLOSING;
        } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
            conn_close(c);
        }
    }
    run_loop_until(all_done, now_ns() + 2000000000ull);
    for (int i = 0; i < opt.connections; i++) conn_close(&conns[i]);
}

static void print_result(double seconds, double cpu, double handshake_s, int connected) {
    double rate = seconds > 0 ? messages / seconds : 0;
    printf("{\"generator\": \"c\", \"connections\": %d, \"connected\": %d, \"depth\": %d, "
           "\"size\": %zu, \"messages\": %llu, \"seconds\": %.4f, \"msg_per_s\": %.1f, "
           "\"mb_per_s\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %llu, "
           "\"unexpected\": %llu, \"deflate\": %s, \"handshake_s\": %.3f, \"cpu_s\": %.3f, "
           "\"cpu_util\": %.3f, \"error\": \"",
           opt.connections, connected, opt.depth, opt.size, (unsigned long long)messages, seconds,
           rate, rate * opt.size / 1e6, hist_percentile(50), hist_percentile(99),
           (unsigned long long)errors, (unsigned long long)unexpected,
           (opt.deflate_file && deflate_ok == (uint64_t)connected && connected) ? "true" : "false",
           handshake_s, cpu, seconds > 0 ? cpu / seconds : 0);
    for (const char *p = last_error; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar(*p >= 32 ? *p : ' ');
    }
    printf("\"}\n");
    fflush(stdout);
}

static int run_client(void) {
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)now_ns());
    unsigned char *payload = make_payload(opt.size, opt.kind);
    int op = !strcmp(opt.kind, "binary") ? 0x82 : 0x81;
    batch = build_batch(op, payload, opt.size, &frame_len);
    if (opt.deflate_file) {
        FILE *f = fopen(opt.deflate_file, "rb");
        if (!f) die("cannot open the --deflate file");
        unsigned char *z = malloc(opt.size + 1024);
        size_t zn = fread(z, 1, opt.size + 1024, f);
        fclose(f);
        batch_deflate = build_batch(op | 0x40, z, zn, &frame_len_deflate);
    }
    conns = calloc((size_t)opt.connections, sizeof *conns);
    for (int i = 0; i < opt.connections; i++) {
        conns[i].id = i;
        conns[i].hdr_need = 2;
        conns[i].ts = malloc(sizeof(uint64_t) * (size_t)opt.depth);
    }
    epfd = epoll_create1(0);
    t_start = now_ns();

    /* Connect everything first (at most --concurrency handshakes at a time). */
    if (opt.idle) {
        run_loop_until(all_started_settled, t_start + (uint64_t)(opt.timeout * 1e9));
        double handshake_s = (now_ns() - t_start) / 1e9;
        int connected = open_count;
        /* cpu_s: this generator's CPU time for the opening (it began at 0). */
        printf("{\"event\": \"connected\", \"connected\": %d, \"seconds\": %.3f, \"cpu_s\": %.3f}\n",
               connected, handshake_s, cpu_seconds());
        fflush(stdout);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
        t_measure = 0;
        run_loop_until(go_given, now_ns() + (uint64_t)(opt.timeout * 1e9));
        /* One echo each. */
        measuring = 1;
        uint64_t t0 = now_ns();
        t_end = t0 + (uint64_t)(opt.reply_timeout * 1e9);
        double cpu0 = cpu_seconds();
        for (int i = 0; i < opt.connections; i++)
            if (conns[i].state == C_OPEN) { conns[i].to_send = 1; pump_out(&conns[i], now_ns()); }
        run_loop_until(all_echoed, t_end);
        double seconds = (now_ns() - t0) / 1e9;
        double cpu = cpu_seconds() - cpu0;
        close_all();
        print_result(seconds, cpu, handshake_s, connected);
        return 0;
    }

    run_loop_until(all_started_settled, t_start + (uint64_t)(opt.timeout * 1e9));
    double handshake_s = (now_ns() - t_start) / 1e9;
    int connected = open_count;
    uint64_t now = now_ns();
    t_measure = now + (uint64_t)(opt.warmup * 1e9);
    t_end = t_measure + (uint64_t)(opt.duration * 1e9);
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state == C_OPEN) { conns[i].to_send = opt.depth; pump_out(&conns[i], now); }
    run_loop_until(never, t_measure);
    measuring = 1;
    /* Markers for the bench, which samples the server's CPU time on each. */
    printf("{\"event\": \"measuring\"}\n");
    fflush(stdout);
    double cpu0 = cpu_seconds();
    run_loop_until(never, t_end);
    double cpu = cpu_seconds() - cpu0;
    printf("{\"event\": \"measured\"}\n");
    fflush(stdout);
    double seconds = opt.duration;
    close_all();
    print_result(seconds, cpu, handshake_s, connected);
    return 0;
}

/* ---------------------------------------------------------------- the echo server */

typedef struct sconn {
    int fd, open, want_out;
    unsigned char *in, *out;
    size_t in_len, in_cap, out_len, out_cap, out_off;
    struct sconn *prev, *next;   /* every connection, for --broadcast */
} sconn;

static sconn *sc_all;

static void sc_out(sconn *s, const void *p, size_t n) {
    if (s->out_len + n > s->out_cap) {
        s->out_cap = (s->out_len + n) * 2;
        s->out = realloc(s->out, s->out_cap);
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
}

static void sc_free(sconn *s) {
    if (s->prev) s->prev->next = s->next;
    else sc_all = s->next;
    if (s->next) s->next->prev = s->prev;
    close(s->fd);
    free(s->in);
    free(s->out);
    free(s);
}

static int sc_flush(sconn *s) {
    while (s->out_off < s->out_len) {
        ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            return -1;
        }
        s->out_off += (size_t)w;
    }
    if (s->out_off == s->out_len) s->out_off = s->out_len = 0;
    int want = s->out_len > 0;
    if (want != s->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = s};
        epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
        s->want_out = want;
    }
    return 0;
}

/* Returns -1 to close the connection. */
static int sc_process(sconn *s) {
    size_t off = 0;
    if (!s->open) {
        s->in[s->in_len] = 0;
        char *end = strstr((char *)s->in, "\r\n\r\n");
        if (!end) return s->in_len > 8000 ? -1 : 0;
        char *k = strcasestr((char *)s->in, "\r\nSec-WebSocket-Key:");
        if (!k) return -1;
        k += 20;
        while (*k == ' ') k++;
        char key[64];
        size_t n = strcspn(k, "\r\n ");
        if (n >= sizeof key) return -1;
        memcpy(key, k, n);
        key[n] = 0;
        char acc[29], reply[256];
        accept_key(key, acc);
        int len = snprintf(reply, sizeof reply,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
        sc_out(s, reply, (size_t)len);
        s->open = 1;
        off = (size_t)(end + 4 - (char *)s->in);
    }
    for (;;) {
        unsigned char *p = s->in + off;
        size_t avail = s->in_len - off;
        if (avail < 2) break;
        int l = p[1] & 127, masked = p[1] >> 7;
        size_t h = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (avail < h) break;
        uint64_t len = l;
        if (l == 126) len = (uint64_t)p[2] << 8 | p[3];
        else if (l == 127) { len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; }
        if (avail - h < len) {
            if (h + len > s->in_cap) {  /* a big frame: make room for all of it */
                s->in_cap = h + len + 65536;
                unsigned char *bigger = realloc(s->in, s->in_cap + 1);
                if (!bigger) return -1;
                s->in = bigger;
            }
            break;
        }
        unsigned char *m = p + h - 4, *data = p + h;
        if (masked) {  /* eight bytes at a time, then the tail */
            uint64_t i = 0, m8;
            unsigned char m8b[8];
            for (int j = 0; j < 8; j++) m8b[j] = m[j & 3];
            memcpy(&m8, m8b, 8);
            for (; i + 8 <= len; i += 8) {
                uint64_t w;
                memcpy(&w, data + i, 8);
                w ^= m8;
                memcpy(data + i, &w, 8);
            }
            for (; i < len; i++) data[i] ^= m[i & 3];
        }
        int opcode = p[0] & 15;
        unsigned char hdr[14];
        if (opcode == 8) {
            size_t hh = frame_header(hdr, 0x88, len < 2 ? len : 2, NULL);
            sc_out(s, hdr, hh);
            sc_out(s, data, len < 2 ? len : 2);
            sc_flush(s);
            return -1;
        }
        if (opcode == 9) {
            size_t hh = frame_header(hdr, 0x8A, len, NULL);
            sc_out(s, hdr, hh);
            sc_out(s, data, len);
        } else if (opcode != 10 && opt.broadcast) {
            /* Queued and sent without blocking; a failed send is dealt with
               when epoll reports that connection (it may be later in this
               batch of events, so it is not freed here). */
            size_t hh = frame_header(hdr, p[0] & 0x8F, len, NULL);
            for (sconn *each = sc_all; each; each = each->next) {
                if (!each->open) continue;
                sc_out(each, hdr, hh);
                sc_out(each, data, len);
                if (each != s) sc_flush(each);
            }
        } else if (opcode != 10) {
            size_t hh = frame_header(hdr, p[0] & 0x8F, len, NULL);
            sc_out(s, hdr, hh);
            sc_out(s, data, len);
        }
        off += h + len;
    }
    if (off) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    return 0;
}

static __attribute__((noreturn)) int run_server(void) {
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("cannot bind");
    listen(lfd, 4096);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    printf("READY %d\n", ntohs(a.sin_port));
    fflush(stdout);
    set_nonblocking(lfd);
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(epfd, events, 512, -1);
        for (int i = 0; i < n; i++) {
            sconn *s = events[i].data.ptr;
            if (!s) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    sconn *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->in_cap = 65536;
                    c->in = malloc(c->in_cap + 1);
                    c->next = sc_all;
                    if (sc_all) sc_all->prev = c;
                    sc_all = c;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (events[i].events & EPOLLOUT && sc_flush(s) < 0) { sc_free(s); continue; }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int closed = 0;
                for (;;) {
                    if (s->in_len == s->in_cap) { s->in_cap *= 2; s->in = realloc(s->in, s->in_cap + 1); }
                    ssize_t r = recv(s->fd, s->in + s->in_len, s->in_cap - s->in_len, 0);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r <= 0) { closed = 1; break; }
                    s->in_len += (size_t)r;
                    if (sc_process(s) < 0) { closed = 1; break; }
                }
                if (closed || sc_flush(s) < 0) { sc_free(s); continue; }
            }
        }
    }
}

/* ---------------------------------------------------------------- command line */

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE() do { if (!v) die("option needs a value"); i++; } while (0)
        if (!strcmp(a, "--serve")) opt.serve = 1;
        else if (!strcmp(a, "--broadcast")) opt.broadcast = 1;
        else if (!strcmp(a, "--idle")) opt.idle = 1;
        else if (!strcmp(a, "--host")) { VALUE(); opt.host = v; }
        else if (!strcmp(a, "--port")) { VALUE(); opt.port = atoi(v); }
        else if (!strcmp(a, "--path")) { VALUE(); opt.path = v; }
        else if (!strcmp(a, "--connections")) { VALUE(); opt.connections = atoi(v); }
        else if (!strcmp(a, "--depth")) { VALUE(); opt.depth = atoi(v); }
        else if (!strcmp(a, "--size")) { VALUE(); opt.size = (size_t)atoll(v); }
        else if (!strcmp(a, "--kind")) { VALUE(); opt.kind = v; }
        else if (!strcmp(a, "--duration")) { VALUE(); opt.duration = atof(v); }
        else if (!strcmp(a, "--warmup")) { VALUE(); opt.warmup = atof(v); }
        else if (!strcmp(a, "--timeout")) { VALUE(); opt.timeout = atof(v); }
        else if (!strcmp(a, "--reply-timeout")) { VALUE(); opt.reply_timeout = atof(v); }
        else if (!strcmp(a, "--concurrency")) { VALUE(); opt.concurrency = atoi(v); }
        else if (!strcmp(a, "--deflate")) { VALUE(); opt.deflate_file = v; }
        else { fprintf(stderr, "loadgen: unknown option %s\n", a); return 2; }
    }
    if (opt.serve) return run_server();
    if (!opt.port) die("--port is required");
    if (opt.connections < 1 || opt.depth < 1) die("--connections and --depth must be at least 1");
    return run_client();
}
