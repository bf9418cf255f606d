/*
 * overflow.c - reporting a user thread that ran off the bottom of its stack.
 *
 * A thread that overflows touches its guard page and takes SIGSEGV. The
 * handler cannot run on the thread's stack (it is the stack that is full),
 * so every worker kernel thread gets an alternate signal stack and the
 * handler is installed with SA_ONSTACK. The handler checks whether the
 * faulting address lies in or just below the running thread's guard page
 * (a large frame can jump past the page itself); if so it prints
 *
 *   weft: thread <id> '<name>' overflowed its <size> stack
 *
 * and aborts. Any other fault goes to whatever handler was installed before
 * weft's (a sanitizer's, the program's), or to the default action.
 *
 * Threads whose stacks carry a canary instead of a guard page (past the
 * mprotect budget, see stack.c) are checked at every switch and reported
 * the same way.
 */
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#define ALTSTACK_SIZE (64 * 1024)
#define BELOW_GUARD (64 * 1024)

static struct sigaction previous;

void weft__overflow_report(struct uthread *ut)
{
    size_t kib = ut->stack_size / 1024;
    weft__panic("thread %llu '%s' overflowed its %zu KiB stack", (unsigned long long)ut->handle,
                ut->name, kib);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct kthread *k = weft__kthread();
    if (!k)
        k = weft__tls_blocking; /* a thread in a blocking section */
    struct uthread *ut = k ? k->cur : NULL;
    if (ut) {
        char *a = si->si_addr;
        char *guard = ut->map;
        if (a < guard + weft__page_size() && a + BELOW_GUARD >= guard)
            weft__overflow_report(ut);
    }
    /* Not an overflow of ours: hand over. */
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, si, uc);
        return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    /* Returning re-runs the faulting instruction, which now kills the
     * process the default way (with a core dump where enabled). */
    signal(sig, SIG_DFL);
}

void weft__overflow_init(void)
{
    /* Installed already (a fork child starting a runtime of its own):
     * taking ourselves as the previous handler would recurse for ever. */
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_segv)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
}

void weft__overflow_thread_init(struct kthread *k)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return; /* someone (a sanitizer) already gave this thread one */
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (mem == MAP_FAILED)
        return; /* overflows will then die by SIGSEGV without the report */
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) == 0)
        k->altstack = mem;
    else
        munmap(mem, ALTSTACK_SIZE);
}

void weft__overflow_thread_fini(struct kthread *k)
{
    if (!k->altstack)
        return;
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    munmap(k->altstack, ALTSTACK_SIZE);
    k->altstack = NULL;
}
