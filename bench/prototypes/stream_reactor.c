/* A measurement prototype, not the product: can libfcgi's request API stay
 * on the request path while one thread per process relays every stream?
 * Acceptor threads take requests with FCGX_Accept_r, each into a request of
 * its own (malloc'd, so it outlives the accept), start the upstream POST
 * and hand it to the reactor: one thread driving every transfer of the
 * process through one libcurl multi handle (the multi-socket API on one
 * epoll set), writing each event to its
 * request with FCGX_PutStr + FCGX_FFlush as it arrives, and finishing the
 * request (FCGX_Finish_r, connection not kept) when the transfer ends. So
 * events of many streams are handled per wake-up instead of one thread
 * waking per event. GET answers 200 "ok" (the stack's readiness probe).
 *
 *   cc -O2 -o /tmp/stream_reactor bench/prototypes/stream_reactor.c -lcurl -lfcgi -lpthread
 *
 * Run in the gateway's place for bench scenario 8 (spawn-fcgi starts it as
 * `BIN serve --config FILE ...`; the upstream is FILE's upstream.baseURL +
 * /chat/completions):
 *   printf '#!/bin/sh\nexec /tmp/stream_reactor "$@"\n' > /tmp/reactor.sh && chmod +x /tmp/reactor.sh
 *   KIMI_GATEWAY_BIN=/tmp/reactor.sh ... scenario_many_streams()
 * No limits, no timeouts, no client-left detection: the question is the
 * cost of an event, nothing else. */
#include <curl/curl.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct stream {
    FCGX_Request req;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    int head_sent;
    struct stream *next;
} stream;

static char url[512];
static CURLM *multi;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static stream *incoming; /* handed over by the acceptors, taken by the reactor */

static size_t on_data(char *p, size_t s, size_t n, void *u) {
    stream *st = u;
    if (!st->head_sent) {
        FCGX_FPrintF(st->req.out, "Status: 200 OK\r\nContent-Type: text/event-stream\r\nX-Accel-Buffering: no\r\n\r\n");
        st->head_sent = 1;
    }
    FCGX_PutStr(p, (int)(s * n), st->req.out);
    FCGX_FFlush(st->req.out);
    return s * n;
}

/* libcurl's multi-socket API on one epoll set: only the sockets that are
 * ready are looked at (curl_multi_poll and curl_multi_perform walk every
 * transfer, which at 2,500 streams a process is most of the cost). */
static int ep, wake_fd;
static long timeout_ms = -1;

static int on_socket(CURL *e, curl_socket_t fd, int what, void *u, void *sp) {
    (void)e; (void)u; (void)sp;
    struct epoll_event ev = {.data.fd = fd};
    if (what == CURL_POLL_REMOVE) { epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); return 0; }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static int on_timer(CURLM *m, long ms, void *u) { (void)m; (void)u; timeout_ms = ms; return 0; }

static void finish_done(void) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        stream *done;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&done);
        if (!done->head_sent) FCGX_FPrintF(done->req.out, "Status: 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        curl_multi_remove_handle(multi, done->easy);
        curl_easy_cleanup(done->easy);
        curl_slist_free_all(done->hdrs);
        done->req.keepConnection = 0; /* nobody accepts on it again */
        FCGX_Finish_r(&done->req);
        free(done->body);
        free(done);
    }
}

/* STREAM_REACTOR_COALESCE_US: rest this long after each round, so the
 * events that arrive meanwhile share the next wake-up (0: none). */
static unsigned coalesce_us;

static void *reactor(void *arg) {
    (void)arg;
    struct epoll_event evs[512];
    for (;;) {
        if (coalesce_us) usleep(coalesce_us);
        int n = epoll_wait(ep, evs, 512, (int)timeout_ms);
        int running;
        if (n == 0) curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == wake_fd) {
                uint64_t v;
                if (read(wake_fd, &v, sizeof v) < 0) { /* nothing to take */ }
                pthread_mutex_lock(&lock);
                stream *st = incoming;
                incoming = NULL;
                pthread_mutex_unlock(&lock);
                for (; st; st = st->next) curl_multi_add_handle(multi, st->easy);
                continue;
            }
            int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
                      | (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(multi, fd, flags, &running);
        }
        finish_done();
    }
    return NULL;
}

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        stream *st = calloc(1, sizeof *st);
        FCGX_InitRequest(&st->req, 0, 0);
        if (FCGX_Accept_r(&st->req) < 0) { free(st); return NULL; }
        const char *method = FCGX_GetParam("REQUEST_METHOD", st->req.envp);
        if (!method || strcmp(method, "POST") != 0) {
            FCGX_FPrintF(st->req.out, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
            st->req.keepConnection = 0; /* the struct is freed: nobody would read the kept connection */
            FCGX_Finish_r(&st->req);
            free(st);
            continue;
        }
        const char *cl = FCGX_GetParam("CONTENT_LENGTH", st->req.envp);
        int len = cl ? atoi(cl) : 0;
        st->body = malloc((size_t)len + 1);
        int n = len > 0 ? FCGX_GetStr(st->body, len, st->req.in) : 0;
        st->easy = curl_easy_init();
        st->hdrs = curl_slist_append(NULL, "Authorization: Bearer sk-bench-placeholder");
        st->hdrs = curl_slist_append(st->hdrs, "Content-Type: application/json");
        st->hdrs = curl_slist_append(st->hdrs, "Expect:");
        curl_easy_setopt(st->easy, CURLOPT_URL, url);
        curl_easy_setopt(st->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(st->easy, CURLOPT_HTTPHEADER, st->hdrs);
        curl_easy_setopt(st->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(n > 0 ? n : 0));
        curl_easy_setopt(st->easy, CURLOPT_POSTFIELDS, st->body);
        curl_easy_setopt(st->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(st->easy, CURLOPT_WRITEDATA, st);
        curl_easy_setopt(st->easy, CURLOPT_PRIVATE, st);
        pthread_mutex_lock(&lock);
        st->next = incoming;
        incoming = st;
        pthread_mutex_unlock(&lock);
        uint64_t one = 1;
        if (write(wake_fd, &one, sizeof one) < 0) { /* the reactor is awake anyway */ }
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "--config")) {
        FILE *f = fopen(argv[i + 1], "r"); char b[8192]; size_t n = f ? fread(b, 1, sizeof b - 1, f) : 0; b[n] = 0;
        char *p = strstr(b, "\"baseURL\""); p = p ? strchr(p + 9, '"') : 0; char *q = p ? strchr(p + 1, '"') : 0;
        if (p && q) snprintf(url, sizeof url, "%.*s/chat/completions", (int)(q - p - 1), p + 1);
    }
    if (!url[0]) return 1;
    const char *c = getenv("STREAM_REACTOR_COALESCE_US");
    coalesce_us = c ? (unsigned)atoi(c) : 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    FCGX_Init();
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    multi = curl_multi_init();
    ep = epoll_create1(0);
    wake_fd = eventfd(0, EFD_NONBLOCK);
    struct epoll_event wev = {.events = EPOLLIN, .data.fd = wake_fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &wev);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    pthread_t r, t[8];
    pthread_create(&r, 0, reactor, 0);
    for (int i = 0; i < 8; i++) pthread_create(&t[i], 0, acceptor, 0);
    pthread_join(r, 0);
}
