/* A measurement prototype, not the product: the relay of
 * eventloop_relay.c on the gateway's process model, with no app logic:
 * libfcgi's FCGX_Accept_r in each of 64 threads (a kept connection stays
 * with its thread), a blocking libcurl easy handle per thread. Built with
 * `cc -O2 -o /tmp/relay bench/prototypes/threads_relay.c -lcurl -lfcgi -lpthread`
 * and run as eventloop_relay.c says. `--workers N` forks N-1 more processes
 * on the same socket, as `kimi-gateway serve --workers N` does: all in one
 * session, so a kernel with autogroup schedules them as one group, as it
 * does the gateway run by its systemd unit or `make run`. */
#include <curl/curl.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char url[512];
typedef struct { char *p; size_t n, cap; } buf;
static size_t on_data(char *p, size_t s, size_t n, void *u) {
    buf *b = u; size_t k = s * n;
    if (b->n + k > b->cap) { b->cap = (b->n + k) * 2; b->p = realloc(b->p, b->cap); }
    memcpy(b->p + b->n, p, k); b->n += k; return k;
}
static void *worker(void *arg) {
    FCGX_Request req; FCGX_InitRequest(&req, 0, 0);
    CURL *e = curl_easy_init(); buf ans = {0}; char body[65536];
    struct curl_slist *h = 0;
    h = curl_slist_append(h, "Authorization: Bearer sk-bench-placeholder");
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    while (FCGX_Accept_r(&req) >= 0) {
        int n = FCGX_GetStr(body, sizeof body, req.in);
        ans.n = 0;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(n > 0 ? n : 0));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        CURLcode rc = curl_easy_perform(e);
        if (rc == CURLE_OK) {
            FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", (int)ans.n);
            FCGX_PutStr(ans.p, (int)ans.n, req.out);
        } else FCGX_FPrintF(req.out, "Status: 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        FCGX_Finish_r(&req);
    }
    return 0;
}
int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "--config")) {
        FILE *f = fopen(argv[i + 1], "r"); char b[8192]; size_t n = f ? fread(b, 1, sizeof b - 1, f) : 0; b[n] = 0;
        char *p = strstr(b, "\"baseURL\""); p = p ? strchr(p + 9, '"') : 0; char *q = p ? strchr(p + 1, '"') : 0;
        if (p && q) snprintf(url, sizeof url, "%.*s/chat/completions", (int)(q - p - 1), p + 1);
    }
    if (!url[0]) return 1;
    int workers = 1;
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "--workers")) workers = atoi(argv[i + 1]);
    pid_t parent = getpid();
    for (int i = 1; i < workers; i++) if (fork() == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* stopped with the first process */
        if (getppid() != parent) return 0;
        break;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); FCGX_Init();
    signal(SIGTERM, SIG_DFL); /* libfcgi's handler only marks a shutdown that threads in accept() never see */
    pthread_t t[64];
    for (int i = 0; i < 64; i++) pthread_create(&t[i], 0, worker, 0);
    for (int i = 0; i < 64; i++) pthread_join(t[i], 0);
}
