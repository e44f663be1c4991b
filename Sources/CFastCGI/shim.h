#ifndef KIMI_CFASTCGI_SHIM_H
#define KIMI_CFASTCGI_SHIM_H
#include <fcgiapp.h>

/* libfcgi's envp is a NULL-terminated char** that Swift sees as an optional
   pointer; these keep the walk over it out of Swift's pointer casts. */
static inline const char *kimi_fcgx_env_at(FCGX_Request *r, int i) {
    return r->envp ? r->envp[i] : (const char *)0;
}
#endif
