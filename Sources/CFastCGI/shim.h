#ifndef KIMI_CFASTCGI_SHIM_H
#define KIMI_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <signal.h>

/* libfcgi's envp is a NULL-terminated char** that Swift sees as an optional
   pointer; these keep the walk over it out of Swift's pointer casts. */
static inline const char *kimi_fcgx_env_at(FCGX_Request *r, int i) {
    return r->envp ? r->envp[i] : (const char *)0;
}

/* accept4 is a GNU extension (hidden without _GNU_SOURCE): close-on-exec
   from the start, so a fork/exec never inherits a client connection. */
extern int accept4(int, struct sockaddr *, socklen_t *, int);
static inline int kimi_accept_cloexec(int fd) { return accept4(fd, 0, 0, SOCK_CLOEXEC); }

#include <malloc.h>
/* malloc.h is not in Swift's Glibc module. */
static inline int kimi_fixed_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

/* prctl is variadic, which Swift cannot call. */
static inline int kimi_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }
#endif
