/*
 * atomic.h - the few atomic operations weft uses, as thin names over the
 * GCC/Clang __atomic builtins (which work on plain fields, so a struct field
 * does not have to be declared _Atomic to be accessed atomically).
 *
 * Every use site names its ordering; every release names, in a comment at
 * the call, the acquire it pairs with.
 */
#ifndef WEFT_BASE_ATOMIC_H
#define WEFT_BASE_ATOMIC_H

#define load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_seq(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define store_seq(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define xchg_acq_rel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
/* A seq_cst store that is also a full barrier on x86 (one xchg, where
 * store_seq compiles to mov + mfence). */
#define xchg_seq(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define fetch_add_seq(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define fetch_sub_seq(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define fence_seq() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Compare-and-swap; on failure *expected holds the value seen. */
#define cas_acq_rel(p, expected, desired)                                   \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL, \
                                __ATOMIC_ACQUIRE)
#define cas_seq(p, expected, desired)                                       \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_SEQ_CST, \
                                __ATOMIC_SEQ_CST)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Stops the compiler from moving memory accesses across this point. */
#define compiler_barrier() __asm__ __volatile__("" ::: "memory")

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif
