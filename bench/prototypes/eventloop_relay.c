#define _GNU_SOURCE
/* A measurement prototype for the event-loop decision, not the product: the
 * process model the remaining targets need, with no app logic. One event
 * loop per process; FastCGI records parsed here (fastcgi.h from libfcgi-dev,
 * libfcgi's request API not used); each request relayed upstream through
 * libcurl's multi-socket API in the same loop; the answer passed back.
 * threads_relay.c is the same relay on the gateway's process model.
 *
 * Run either as the bench stack's twin pool, beside the gateway and nginx
 * proxy_pass in one stack (compare.py beside this file; README "Performance"):
 *   cc -O2 -o /tmp/relay bench/prototypes/eventloop_relay.c -lcurl
 *   printf '#!/bin/sh\nexec chrt -b 0 /tmp/relay "$@"\n' > /tmp/relay.sh && chmod +x /tmp/relay.sh
 *   KIMI_TWIN_BIN=/tmp/relay.sh PYTHONPATH=tools python3 -m bench.prototypes.compare
 * (SCHED_BATCH as the gateway's threads.) The twin is started as `BIN serve --config FILE ...`: the upstream URL is
 * FILE's upstream.baseURL + /chat/completions. Small answers only (one
 * write each, up to 8 KiB), no timeouts, no error handling beyond a 502. */
#include <curl/curl.h>
#include <fastcgi.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    unsigned char in[65536]; size_t inlen;
    int reqid, keep, params_done, stdin_done;
    unsigned char *body; size_t bodylen, bodycap;
    unsigned char *ans; size_t anslen, anscap;
    CURL *easy; struct curl_slist *hdrs;
} conn;

static int ep; static CURLM *multi; static char url[512]; static long timeout_ms = -1;
#define TAG_LISTEN ((uint64_t)1 << 62)
#define TAG_CURL   ((uint64_t)1 << 61)

static void put_record(unsigned char **buf, size_t *len, size_t *cap, int type, int id, const void *data, size_t n) {
    size_t pad = (8 - n % 8) % 8, need = *len + 8 + n + pad;
    if (need > *cap) { *cap = need * 2; *buf = realloc(*buf, *cap); }
    unsigned char *p = *buf + *len;
    p[0] = FCGI_VERSION_1; p[1] = type; p[2] = id >> 8; p[3] = id; p[4] = n >> 8; p[5] = n; p[6] = pad; p[7] = 0;
    if (n) memcpy(p + 8, data, n);
    memset(p + 8 + n, 0, pad);
    *len = need;
}

static void close_conn(conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, 0);
    close(c->fd);
    if (c->easy) { curl_multi_remove_handle(multi, c->easy); curl_easy_cleanup(c->easy); }
    curl_slist_free_all(c->hdrs); free(c->body); free(c->ans); free(c);
}

static size_t on_data(char *p, size_t s, size_t n, void *u) {
    conn *c = u; size_t k = s * n;
    if (c->anslen + k > c->anscap) { c->anscap = (c->anslen + k) * 2; c->ans = realloc(c->ans, c->anscap); }
    memcpy(c->ans + c->anslen, p, k); c->anslen += k; return k;
}

static void start_upstream(conn *c) {
    if (!c->easy) {
        c->easy = curl_easy_init();
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        c->hdrs = curl_slist_append(c->hdrs, "Authorization: Bearer sk-bench-placeholder");
        c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/json");
        c->hdrs = curl_slist_append(c->hdrs, "Expect:");
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs);
    }
    c->anslen = 0;
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->bodylen);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->bodylen ? (char *)c->body : "");
    curl_multi_add_handle(multi, c->easy);
}

static void finish(conn *c, CURLcode rc) {
    curl_multi_remove_handle(multi, c->easy);
    unsigned char *out = 0; size_t len = 0, cap = 0; char head[256];
    int n = snprintf(head, sizeof head, "Status: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     rc == CURLE_OK ? "200 OK" : "502 Bad Gateway", rc == CURLE_OK ? c->anslen : 0);
    unsigned char tmp[8192]; memcpy(tmp, head, n); size_t t = n;
    if (rc == CURLE_OK && t + c->anslen <= sizeof tmp) { memcpy(tmp + t, c->ans, c->anslen); t += c->anslen; }
    put_record(&out, &len, &cap, FCGI_STDOUT, c->reqid, tmp, t);
    put_record(&out, &len, &cap, FCGI_STDOUT, c->reqid, 0, 0);
    unsigned char end[8] = {0, 0, 0, 0, FCGI_REQUEST_COMPLETE, 0, 0, 0};
    put_record(&out, &len, &cap, FCGI_END_REQUEST, c->reqid, end, 8);
    ssize_t w = send(c->fd, out, len, MSG_NOSIGNAL); /* small answers: one write into an idle socket */
    free(out);
    c->params_done = c->stdin_done = 0; c->bodylen = 0; c->reqid = 0;
    if (w != (ssize_t)len || !c->keep) close_conn(c);
}

/* Parses whole records from c->in; starts the upstream call when STDIN ends. */
static int on_readable(conn *c) {
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
        if (r == 0) return -1;
        if (r < 0) { if (errno == EAGAIN) break; return -1; }
        c->inlen += r;
    }
    size_t off = 0;
    while (c->inlen - off >= 8) {
        FCGI_Header *h = (FCGI_Header *)(c->in + off);
        size_t n = (h->contentLengthB1 << 8) | h->contentLengthB0, total = 8 + n + h->paddingLength;
        if (c->inlen - off < total) break;
        unsigned char *content = c->in + off + 8;
        switch (h->type) {
        case FCGI_BEGIN_REQUEST:
            c->reqid = (h->requestIdB1 << 8) | h->requestIdB0;
            c->keep = ((FCGI_BeginRequestBody *)content)->flags & FCGI_KEEP_CONN;
            break;
        case FCGI_PARAMS: if (n == 0) c->params_done = 1; break;
        case FCGI_STDIN:
            if (n == 0) { c->stdin_done = 1; break; }
            if (c->bodylen + n > c->bodycap) { c->bodycap = (c->bodylen + n) * 2; c->body = realloc(c->body, c->bodycap); }
            memcpy(c->body + c->bodylen, content, n); c->bodylen += n;
            break;
        }
        off += total;
        if (c->stdin_done) { memmove(c->in, c->in + off, c->inlen - off); c->inlen -= off; start_upstream(c); return 0; }
    }
    memmove(c->in, c->in + off, c->inlen - off); c->inlen -= off;
    return 0;
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *u, void *sp) {
    struct epoll_event ev = {0}; ev.data.u64 = TAG_CURL | (uint64_t)s;
    if (what == CURL_POLL_REMOVE) { epoll_ctl(ep, EPOLL_CTL_DEL, s, 0); return 0; }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) != 0) epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    return 0;
}
static int timer_cb(CURLM *m, long ms, void *u) { timeout_ms = ms; return 0; }

static void drain_done(void) {
    CURLMsg *m; int left;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        conn *c; curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        finish(c, m->data.result);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "--config")) {
        FILE *f = fopen(argv[i + 1], "r"); char buf[8192]; size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0; buf[n] = 0;
        char *p = strstr(buf, "\"baseURL\""); p = p ? strchr(p + 9, '"') : 0; char *q = p ? strchr(p + 1, '"') : 0;
        if (p && q) snprintf(url, sizeof url, "%.*s/chat/completions", (int)(q - p - 1), p + 1);
    }
    if (!url[0]) { fprintf(stderr, "no upstream.baseURL\n"); return 1; }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    ep = epoll_create1(0);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTEN};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, timeout_ms);
        int running;
        if (n == 0) { timeout_ms = -1; curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running); drain_done(); continue; }
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == TAG_LISTEN) {
                int fd;
                while ((fd = accept4(0, 0, 0, SOCK_CLOEXEC)) >= 0) {
                    conn *c = calloc(1, sizeof *c); c->fd = fd;
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
            } else if (d & TAG_CURL) {
                int s = (int)(d & 0xffffffff), flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0);
                curl_multi_socket_action(multi, s, flags, &running);
            } else {
                conn *c = evs[i].data.ptr;
                if (on_readable(c) < 0) close_conn(c);
            }
        }
        drain_done();
    }
}
