/* The bench's clients for many long streams (scenario 8): N streamed chat
 * completions held open at once through nginx, opened at RATE a second, on
 * one epoll loop (Python's asyncio held 2,000 at a large share of a core).
 * Each sends an HTTP/1.0 POST (so nginx answers without chunked framing),
 * counts the SSE events of its answer (`data: ` at a line's start, the
 * final `data: [DONE]` not counted) and whether `[DONE]` came. A head split
 * across reads is not expected on loopback; such a stream counts as an error.
 *
 *   cc -O2 -o /tmp/stream_clients bench/stream_clients.c
 *   /tmp/stream_clients PORT N RATE 'JSON BODY' [AUTH]
 *
 * Prints one line of JSON: {"streams","opened","complete","events",
 * "events_min","events_max","errors","status_not_200","wall_s","peak_open"}. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
    int fd;
    char *req;
    size_t reqlen, reqsent;
    int status;
    int head_done;
    int matched;       /* bytes of "data: " matched at this line's start; -1: not at a line's start */
    int after;         /* bytes of "[DONE]" matched after it; -1: not after one */
    long events;
    int done;
} client;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Counts SSE events: "data: " at a line's start, byte by byte (a marker
 * may straddle two reads); "data: [DONE]" marks the end instead. */
static void scan(client *c, const char *buf, size_t n) {
    static const char mark[] = "data: ", done[] = "[DONE]";
    for (size_t i = 0; i < n; i++) {
        char b = buf[i];
        if (b == '\n') { c->matched = 0, c->after = -1; continue; }
        if (c->after >= 0) {                     /* past "data: ": an event, or [DONE]? */
            if (b == done[c->after]) {
                if (++c->after == 6) { c->done = 1, c->after = -1, c->matched = -1; }
            } else {
                c->events++, c->after = -1, c->matched = -1;
            }
            continue;
        }
        if (c->matched < 0) continue;            /* the rest of a line */
        if (b == mark[c->matched]) {
            if (++c->matched == 6) c->after = 0;
        } else {
            c->matched = -1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s PORT N RATE BODY [AUTH]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    double rate = atof(argv[3]);
    const char *body = argv[4], *auth = argc > 5 ? argv[5] : "";
    char head[1024];
    int hl = snprintf(head, sizeof head, "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                      *auth ? "Authorization: Bearer " : "", auth, *auth ? "\r\n" : "", strlen(body));
    size_t reqlen = (size_t)hl + strlen(body);
    char *req = malloc(reqlen);
    memcpy(req, head, (size_t)hl);
    memcpy(req + hl, body, strlen(body));

    int ep = epoll_create1(0);
    client *cs = calloc((size_t)n, sizeof *cs);
    int opened = 0, open_now = 0, peak = 0, closed = 0, errors = 0, not200 = 0, complete = 0;
    long events = 0, emin = -1, emax = 0;
    double t0 = now_s();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event evs[1024];
    static char buf[65536];
    while (closed < n) {
        double t = now_s();
        while (opened < n && opened < (int)((t - t0) * rate) + 1) {
            client *c = &cs[opened];
            c->req = req, c->reqlen = reqlen;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)) {
                errors++, closed++, opened++;
                if (c->fd >= 0) close(c->fd);
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            opened++, open_now++;
            if (open_now > peak) peak = open_now;
        }
        int k = epoll_wait(ep, evs, 1024, opened < n ? 1 : 1000);
        for (int i = 0; i < k; i++) {
            client *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT && c->reqsent < c->reqlen) {
                ssize_t w = send(c->fd, c->req + c->reqsent, c->reqlen - c->reqsent, MSG_NOSIGNAL);
                if (w > 0) c->reqsent += (size_t)w;
                if (c->reqsent == c->reqlen) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                    if (r > 0) {
                        const char *p = buf;
                        size_t len = (size_t)r;
                        if (!c->head_done) {
                            if (c->status == 0 && len > 12) c->status = atoi(buf + 9);
                            char *e = memmem(buf, len, "\r\n\r\n", 4);
                            if (!e) continue; /* a head split across reads: rare on loopback, its events start after it */
                            c->head_done = 1;
                            c->matched = 0, c->after = -1;
                            p = e + 4, len -= (size_t)(p - buf);
                        }
                        scan(c, p, len);
                        continue;
                    }
                    if (r < 0 && errno == EAGAIN) break;
                    /* closed (or failed): the stream is over */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    closed++, open_now--;
                    if (c->status != 200) not200++;
                    if (c->done && c->status == 200) complete++;
                    else errors++;
                    events += c->events;
                    if (emin < 0 || c->events < emin) emin = c->events;
                    if (c->events > emax) emax = c->events;
                    break;
                }
            }
        }
    }
    printf("{\"streams\":%d,\"opened\":%d,\"complete\":%d,\"events\":%ld,\"events_min\":%ld,\"events_max\":%ld,\"errors\":%d,"
           "\"status_not_200\":%d,\"wall_s\":%.2f,\"peak_open\":%d}\n",
           n, opened, complete, events, emin, emax, errors, not200, now_s() - t0, peak);
    return 0;
}
