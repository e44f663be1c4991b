/* The benchmark's baseline: the smallest useful libfcgi responder, answering
 * every request with a fixed /health-like JSON. Built by bench/run.py with
 * `cc -O2 baseline_fcgi.c -lfcgi` and run under spawn-fcgi like the gateway. */
#include <fcgiapp.h>
#include <string.h>

static const char body[] =
    "{\"success\":true,\"status\":\"healthy\",\"engine\":\"ready\",\"message\":\"baseline\"}";

int main(void) {
    FCGX_Request req;
    FCGX_Init();
    FCGX_InitRequest(&req, 0, 0);
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", (int)(sizeof body - 1));
        FCGX_PutStr(body, sizeof body - 1, req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
