/* The bench's upstream for many long streams (scenario 8): an OpenAI-shaped
 * chat completion stream of EVENTS chunks, one every INTERVAL_MS, for every
 * POST, on one epoll loop, so 10,000 streams cost it a few MB and a few
 * percent of a core (the Python simulator holds ~2,000). GET .../models
 * answers a one-model list. Not the product, not a simulator of Kimi: a
 * load source whose own cost stays out of the gateway's figures.
 *
 *   cc -O2 -o /tmp/stream_upstream bench/stream_upstream.c
 *   /tmp/stream_upstream PORT EVENTS INTERVAL_MS
 *
 * Every stream ends with a usage chunk and `data: [DONE]`, then the
 * connection closes (HTTP/1.1 with `Connection: close`: the body ends with
 * it). Prints "ready" when listening; on SIGTERM prints the streams started
 * and finished and the events written. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    char in[16384];
    size_t inlen;
    int streaming;     /* answering: the head is out, events are due */
    int closing;       /* done: closed once what is left is written */
    int sent;          /* events written */
    long long due;     /* next event, ms */
    char *out;         /* what the socket did not take yet */
    size_t outlen, outcap;
} conn;

static int events_per_stream = 120, interval_ms = 500;
static long long started, finished, events_written;
static volatile sig_atomic_t stopping;

/* Streams due in order: every stream has the same interval, so a FIFO ring
 * of (conn) keeps them sorted by due time. */
static conn **ring;
static size_t ring_cap, ring_head, ring_len;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void ring_push(conn *c) {
    if (ring_len == ring_cap) {
        size_t cap = ring_cap ? ring_cap * 2 : 1024;
        conn **n = malloc(cap * sizeof *n);
        for (size_t i = 0; i < ring_len; i++) n[i] = ring[(ring_head + i) % ring_cap];
        free(ring);
        ring = n, ring_cap = cap, ring_head = 0;
    }
    ring[(ring_head + ring_len++) % ring_cap] = c;
}

static void close_conn(int ep, conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1; /* freed when it leaves the ring (or now, if it is not in it) */
    if (!c->streaming) { free(c->out); free(c); }
}

/* Writes what it can; keeps the rest (and asks for EPOLLOUT). 0: the peer is gone. */
static int send_bytes(int ep, conn *c, const char *p, size_t n) {
    if (c->outlen == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return 0;
        if (w > 0) p += w, n -= (size_t)w;
    }
    if (n) {
        if (c->outlen + n > c->outcap) { c->outcap = (c->outlen + n) * 2; c->out = realloc(c->out, c->outcap); }
        memcpy(c->out + c->outlen, p, n);
        c->outlen += n;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return 1;
}

static void answer(int ep, conn *c) {
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end) return;
    size_t head = (size_t)(end - c->in) + 4, body = 0;
    char *cl = strcasestr(c->in, "\r\ncontent-length:");
    if (cl && cl < end) body = strtoul(cl + 17, NULL, 10);
    if (c->inlen < head + body) return;
    if (strncmp(c->in, "GET ", 4) == 0) {
        const char *list = "{\"object\":\"list\",\"data\":[{\"id\":\"moonshot-v1-8k\",\"object\":\"model\",\"owned_by\":\"bench\",\"context_length\":8192}]}";
        char out[512];
        int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         strlen(list), list);
        send_bytes(ep, c, out, (size_t)n);
        shutdown(c->fd, SHUT_WR);
        return;
    }
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if (!send_bytes(ep, c, h, strlen(h))) { close_conn(ep, c); return; }
    c->streaming = 1;
    c->due = now_ms(); /* the first event at once: time to first byte is scenario 3's */
    started++;
    ring_push(c);
}

static void emit(int ep, conn *c) {
    char ev[512];
    int n;
    if (c->sent < events_per_stream) {
        n = snprintf(ev, sizeof ev, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                     "\"model\":\"moonshot-v1-8k\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":null}]}\n\n", c->sent);
    } else {
        n = snprintf(ev, sizeof ev, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                     "\"model\":\"moonshot-v1-8k\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n",
                     events_per_stream, events_per_stream + 8);
    }
    if (!send_bytes(ep, c, ev, (size_t)n)) { c->sent = events_per_stream + 2; return; }
    events_written++;
    c->sent++;
}

static void on_term(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [EVENTS] [INTERVAL_MS]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    if (argc > 2) events_per_stream = atoi(argv[2]);
    if (argc > 3) interval_ms = atoi(argv[3]);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[512];
    while (!stopping) {
        long long now = now_ms();
        int timeout = ring_len ? (int)(ring[ring_head]->due > now ? ring[ring_head]->due - now : 0) : 1000;
        int n = epoll_wait(ep, evs, 512, timeout);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->fd < 0) continue;
            if (evs[i].events & EPOLLOUT && c->outlen) {
                ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
                if (w > 0) { memmove(c->out, c->out + w, c->outlen - (size_t)w); c->outlen -= (size_t)w; }
                if (c->outlen == 0 && c->closing) { close_conn(ep, c); continue; }
                if (c->outlen == 0) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (c->streaming) {
                    /* Nothing more is read from a stream's client; it left when it closes. */
                    char sink[4096];
                    ssize_t r = recv(c->fd, sink, sizeof sink, 0);
                    if (r == 0 || (r < 0 && errno != EAGAIN)) close_conn(ep, c);
                    continue;
                }
                ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen, 0);
                if (r <= 0) { if (r == 0 || errno != EAGAIN) close_conn(ep, c); continue; }
                c->inlen += (size_t)r;
                c->in[c->inlen] = 0;
                answer(ep, c);
            }
        }
        now = now_ms();
        while (ring_len && ring[ring_head]->due <= now) {
            conn *c = ring[ring_head];
            ring_head = (ring_head + 1) % ring_cap, ring_len--;
            if (c->fd < 0) { free(c->out); free(c); continue; }
            emit(ep, c);
            if (c->sent > events_per_stream) {
                finished += c->sent == events_per_stream + 1;
                c->streaming = 0;
                if (c->outlen == 0) close_conn(ep, c); else c->closing = 1; /* closed once the rest is written */
                continue;
            }
            c->due += interval_ms;
            ring_push(c);
        }
    }
    printf("started %lld finished %lld events %lld\n", started, finished, events_written);
    return 0;
}
