#ifndef KIMI_CATOMICS_H
#define KIMI_CATOMICS_H
#include <stdint.h>
#include <stdbool.h>

/* Sequentially consistent 64-bit atomics on plain memory, used on the
   memory-mapped rate-limit file shared by every gateway process. These are
   lock-free on x86_64 and aarch64, so a process that dies mid-operation
   cannot leave anything held. */
static inline uint64_t kimi_atomic_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void kimi_atomic_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline bool kimi_atomic_cas64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t kimi_atomic_add64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline bool kimi_atomic_is_lock_free64(void) { return __atomic_always_lock_free(sizeof(uint64_t), 0); }
#endif
