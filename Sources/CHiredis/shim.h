#ifndef KIMI_CHIREDIS_SHIM_H
#define KIMI_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <sys/time.h>

/* redisCommandArgv returns void*: a typed wrapper for Swift. */
static inline redisReply *kimi_redis_argv(redisContext *c, int argc, const char **argv, const size_t *lens) {
    return (redisReply *)redisCommandArgv(c, argc, argv, lens);
}
static inline struct timeval kimi_redis_tv(long micros) {
    struct timeval tv; tv.tv_sec = micros / 1000000; tv.tv_usec = micros % 1000000; return tv;
}
#endif
