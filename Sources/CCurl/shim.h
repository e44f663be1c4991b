#ifndef KIMI_CCURL_SHIM_H
#define KIMI_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
   call: one typed wrapper per argument kind. */
static inline CURLcode kimi_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kimi_curl_set_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kimi_curl_set_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kimi_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kimi_curl_set_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*kimi_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*kimi_curl_xfer_cb)(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
static inline CURLcode kimi_curl_set_write_cb(CURL *h, kimi_curl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb); }
static inline CURLcode kimi_curl_set_header_cb(CURL *h, kimi_curl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb); }
static inline CURLcode kimi_curl_set_xfer_cb(CURL *h, kimi_curl_xfer_cb cb) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb); }
static inline CURLcode kimi_curl_set_read_cb(CURL *h, kimi_curl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_READFUNCTION, cb); }
static const size_t kimi_curl_readfunc_abort = CURL_READFUNC_ABORT;

static inline long kimi_curl_http_version(CURL *h) {
    long v = 0;
    curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &v);
    return v == CURL_HTTP_VERSION_2_0 ? 2 : (v == CURL_HTTP_VERSION_1_1 ? 1 : (v == CURL_HTTP_VERSION_3 ? 3 : 0));
}
static inline long kimi_curl_response_code(CURL *h) { long c = 0; curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c); return c; }
#endif
