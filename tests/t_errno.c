/*
 * t_errno: errno belongs to the weft thread, not to the kernel thread it
 * happens to run on. A thread sets errno, then yields and parks many times
 * (under WEFT_DEBUG=migrate it resumes on another worker after each switch)
 * and finds its own value every time, while other threads on the same
 * workers set values of their own; a libc call's errno survives a switch
 * too.
 *
 * errno is read through a volatile pointer to __errno_location: glibc
 * declares that function const, so the compiler may keep errno's address
 * across a call that switches threads and then read another kernel thread's
 * errno. That is a hazard of user code (DESIGN.md), not what this test is
 * about; the runtime's job is that the current kernel thread's errno holds
 * the thread's value whenever the thread runs.
 */
#include "check.h"

#include <stdint.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static int *(*volatile errno_at)(void) = __errno_location;

static int get_errno(void)
{
    return *errno_at();
}

static void set_errno(int v)
{
    *errno_at() = v;
}

static uint32_t never_set; /* parked on with a deadline; stays 0 */
static uint32_t gate;

static void *keeps_errno(void *arg)
{
    int mine = (int)P2U(arg);
    set_errno(mine);
    for (int i = 0; i < 2000; i++) {
        weft_yield();
        CHECK_EQ(get_errno(), mine);
        if (i % 50 == 0) {
            /* A real park: the deadline passes while parked. */
            CHECK_ERR(weft_park(&never_set, 0, weft_after(WEFT_US(200))), -ETIMEDOUT);
            CHECK_EQ(get_errno(), mine);
        }
        if (i % 7 == 0) {
            /* A park that does not block, and one with a value that differs. */
            CHECK_ERR(weft_park(&never_set, 0, 0), -ETIMEDOUT);
            CHECK_ERR(weft_park(&never_set, 1, WEFT_FOREVER), -EAGAIN);
            CHECK_EQ(get_errno(), mine);
        }
    }
    /* An errno set by libc survives a switch as well. */
    CHECK_EQ(close(-1), -1);
    CHECK_EQ(get_errno(), EBADF);
    weft_yield();
    CHECK_EQ(get_errno(), EBADF);
    set_errno(mine);

    /* Parked until main opens the gate: woken by an unpark. */
    while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) == 0)
        weft_park(&gate, 0, WEFT_FOREVER);
    CHECK_EQ(get_errno(), mine);
    return U2P(mine);
}

int main(void)
{
    enum { N = 16 };
    weft_t t[N];
    for (int i = 0; i < N; i++)
        CHECK_ERR(weft_spawn(&t[i], keeps_errno, U2P(1234 + i), NULL), 0);

    usleep(20000);
    __atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
    weft_unpark(&gate, -1);
    for (int i = 0; i < N; i++) {
        void *r;
        CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
        CHECK_EQ(P2U(r), 1234 + i);
    }

    /* One thread alone, through many more switches. */
    weft_t one;
    void *r;
    CHECK_ERR(weft_spawn(&one, keeps_errno, U2P(1234), NULL), 0);
    CHECK_ERR(weft_join(one, &r, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(r), 1234);
    return 0;
}
