/*
 * fiber.h - tells AddressSanitizer and ThreadSanitizer that the stack just
 * changed. Without it ASan reports false stack overflows and use-after-
 * returns when a kernel thread starts running on a user thread's stack, and
 * TSan mixes up the happens-before of different user threads.
 *
 * The calls pair up: fiber_leave() just before weft__ctx_switch, with the
 * bounds of the stack about to run, and fiber_arrive() just after it
 * returns, on the stack that now runs.
 *
 * ThreadSanitizer sees each user thread as a fiber of its own, made at
 * spawn and destroyed by whoever frees the finished thread (thread.c); a
 * kernel thread's scheduler context (g0) is the kernel thread's own fiber.
 * tsan_fiber_switch() comes right before weft__ctx_switch, with flags 0:
 * the switch then orders everything the leaving context did before
 * everything the arriving one does, as the kernel thread running both
 * really does. Outside WEFT_TSAN builds all of it compiles to nothing.
 */
#ifndef WEFT_ARCH_FIBER_H
#define WEFT_ARCH_FIBER_H

#include <stddef.h>

#if defined(WEFT_ASAN)
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
/* save: where the leaving context keeps its fake stack; NULL when the
 * leaving context dies (its fake frames are then freed). */
static inline void fiber_leave(void **save, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(save, bottom, size);
}
static inline void fiber_arrive(void *save)
{
    __sanitizer_finish_switch_fiber(save, NULL, NULL);
}
static inline void fiber_unpoison(void *addr, size_t size)
{
    __asan_unpoison_memory_region(addr, size);
}
#else
static inline void fiber_leave(void **save, const void *bottom, size_t size)
{
    (void)save, (void)bottom, (void)size;
}
static inline void fiber_arrive(void *save)
{
    (void)save;
}
static inline void fiber_unpoison(void *addr, size_t size)
{
    (void)addr, (void)size;
}
#endif

#if defined(WEFT_TSAN)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
static inline void *tsan_fiber_current(void) { return __tsan_get_current_fiber(); }
static inline void *tsan_fiber_new(void) { return __tsan_create_fiber(0); }
static inline void tsan_fiber_free(void *f) { __tsan_destroy_fiber(f); }
static inline void tsan_fiber_switch(void *f) { __tsan_switch_to_fiber(f, 0); }
#else
static inline void *tsan_fiber_current(void) { return NULL; }
static inline void *tsan_fiber_new(void) { return NULL; }
static inline void tsan_fiber_free(void *f) { (void)f; }
static inline void tsan_fiber_switch(void *f) { (void)f; }
#endif

#endif
