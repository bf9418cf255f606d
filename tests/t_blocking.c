/*
 * t_blocking: weft_blocking and the hand-off of a blocked worker.
 *
 *   args        fn NULL is -EINVAL; fn's result comes back; from main (a
 *               plain kernel thread) fn just runs
 *   pipe        on one worker, a thread blocked in read(2) of a pipe inside
 *               weft_blocking, which only another weft thread writes: the
 *               writer can run only if the worker was handed off (no hand-
 *               off would hang the test)
 *   spares      with WEFT_DEBUG=spare-exit, the kernel thread a hand-off
 *               leaves spare exits, and later hand-offs make new ones
 *   sleep       on one worker, a thread in weft_blocking(sleep(1)): another
 *               thread keeps running during it (it counts rounds only while
 *               the first is inside the call)
 *   inside      inside fn the caller is a plain kernel thread: weft_self()
 *               is 0, a weft mutex held by another weft thread blocks it
 *               until that thread (run by the handed-off worker) unlocks
 *   errno       errno set by fn survives the return, wherever the thread
 *               resumes
 *   stress      on 1 and 2 workers, many threads alternating blocking
 *               sections of 0..300 us with yields and sleeps, beside
 *               threads that only compute; every result arrives, and the
 *               spare kernel threads made on the way are reused
 *   stop        a stopped thread's weft_blocking gives -ECANCELED without
 *               running fn; a stop while fn runs lets fn finish, and the
 *               next blocking call gives -ECANCELED
 *   file        weft_read / weft_write on a regular file (a blocking
 *               section each) read back what was written
 */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#define U2P(x) ((void *)(uintptr_t)(x))
#define P2U(p) ((uintptr_t)(p))

static int64_t plus_one(void *arg)
{
    return (int64_t)P2U(arg) + 1;
}

static void args(void)
{
    CHECK_ERR(weft_blocking(NULL, NULL), -EINVAL);
    CHECK_EQ(weft_blocking(plus_one, U2P(41)), 42);
    printf("args: ok\n");
}

/* ---- pipe ---- */

static int pfd[2];

static int64_t read_pipe(void *arg)
{
    char c;
    (void)arg;
    return read(pfd[0], &c, 1) == 1 ? c : -errno;
}

static void *pipe_reader(void *arg)
{
    (void)arg;
    return U2P(weft_blocking(read_pipe, NULL));
}

static void *pipe_writer(void *arg)
{
    (void)arg;
    weft_sleep(weft_after(WEFT_MS(5))); /* let the reader block first */
    CHECK_EQ(write(pfd[1], "x", 1), 1);
    return NULL;
}

static void pipe_case(void *arg)
{
    (void)arg;
    CHECK_EQ(pipe(pfd), 0);
    weft_t r, w;
    CHECK_ERR(weft_spawn(&r, pipe_reader, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&w, pipe_writer, NULL, NULL), 0);
    void *res;
    CHECK_ERR(weft_join(r, &res, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(w, NULL, WEFT_FOREVER), 0);
    CHECK_EQ(P2U(res), 'x');
    close(pfd[0]);
    close(pfd[1]);
    printf("pipe: ok\n");
}

/* ---- spares ---- */

static int count_tasks(void)
{
    return check_count_dir("/proc/self/task");
}

/* With WEFT_DEBUG=spare-exit spares exit after 50 ms unused. After a
 * hand-off the old kernel thread is a spare; it goes, and the next
 * hand-off makes (or reuses) another, several times over. */
static void spares_case(void *arg)
{
    (void)arg;
    /* main, the worker's M, the monitor (and a sanitizer's own threads) */
    int base = count_tasks();
    for (int round = 0; round < 3; round++) {
        pipe_case(NULL);
        /* The spare exits 50 ms after it was left unused, but on a loaded
         * machine (or under a sanitizer) it may get a CPU to do so much
         * later: wait up to 30 s for it to be gone. */
        int n = count_tasks();
        int64_t give_up = weft_after(WEFT_SEC(30));
        while (n > base && weft_now() < give_up) {
            weft_sleep(weft_after(WEFT_MS(5)));
            n = count_tasks();
        }
        CHECK_EQ(n, base);
    }
    printf("spares: the spare kernel thread exited after each of 3 hand-offs\n");
}

/* ---- sleep ---- */

static int a_inside; /* atomic, like every flag here */
static int a_done;
static long during; /* atomic: read by the sleeper's kernel thread */

/* Blocks its kernel thread until the counter has counted a round during
 * the call (or 30 s have passed; during stays 0 then, and the test fails),
 * one second at least. A fixed sleep(1) alone would fail the test on a
 * machine too loaded to hand the worker off and run the counter within
 * that second. */
static int64_t sleep_one(void *arg)
{
    (void)arg;
    int r = sleep(1);
    for (int i = 0; i < 3000 && !__atomic_load_n(&during, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    return r;
}

static void *sleeper(void *arg)
{
    (void)arg;
    __atomic_store_n(&a_inside, 1, __ATOMIC_SEQ_CST); /* no switch from here into the call */
    CHECK_EQ(weft_blocking(sleep_one, NULL), 0);
    __atomic_store_n(&a_inside, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&a_done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *counter(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&a_done, __ATOMIC_SEQ_CST)) {
        if (__atomic_load_n(&a_inside, __ATOMIC_SEQ_CST))
            __atomic_fetch_add(&during, 1, __ATOMIC_SEQ_CST);
        weft_sleep(weft_after(WEFT_MS(1)));
    }
    return NULL;
}

static void sleep_case(void *arg)
{
    (void)arg;
    weft_t a, b;
    CHECK_ERR(weft_spawn(&b, counter, NULL, NULL), 0);
    weft_yield();
    CHECK_ERR(weft_spawn(&a, sleeper, NULL, NULL), 0);
    CHECK_ERR(weft_join(a, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(b, NULL, WEFT_FOREVER), 0);
    printf("sleep: the other thread ran %ld rounds during sleep(1)\n", during);
    CHECK(during > 0);
}

/* ---- inside ---- */

static weft_mutex_t m = WEFT_MUTEX_INIT;
static int holder_locked; /* atomic */

static int64_t inside_fn(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_self(), 0);
    CHECK_ERR(weft_mutex_lock(&m), 0); /* blocks this kernel thread */
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    return 7;
}

static void *holder(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_mutex_lock(&m), 0);
    __atomic_store_n(&holder_locked, 1, __ATOMIC_SEQ_CST);
    weft_sleep(weft_after(WEFT_MS(20)));
    CHECK_ERR(weft_mutex_unlock(&m), 0);
    return NULL;
}

static void *inside_thread(void *arg)
{
    (void)arg;
    weft_t self = weft_self();
    CHECK(self != 0);
    while (!__atomic_load_n(&holder_locked, __ATOMIC_SEQ_CST))
        weft_yield();
    CHECK_EQ(weft_blocking(inside_fn, NULL), 7);
    CHECK_EQ(weft_self(), self);
    return NULL;
}

static void inside_case(void *arg)
{
    (void)arg;
    weft_t h, t;
    CHECK_ERR(weft_spawn(&h, holder, NULL, NULL), 0);
    CHECK_ERR(weft_spawn(&t, inside_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_join(h, NULL, WEFT_FOREVER), 0);
    printf("inside: ok\n");
}

/* ---- errno ---- */

/* Read through a volatile pointer, as t_errno says why: the compiler may
 * keep errno's address across the call, and the thread may come back on
 * another kernel thread. */
static int *(*volatile errno_at)(void) = __errno_location;

static int64_t bad_read(void *arg)
{
    char c;
    (void)arg;
    struct timespec ts = {0, 200000}; /* long enough to be handed off */
    nanosleep(&ts, NULL);
    return read(-1, &c, 1);
}

static void *errno_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        *errno_at() = 0;
        CHECK_EQ(weft_blocking(bad_read, NULL), -1);
        CHECK_EQ(*errno_at(), EBADF);
        weft_yield();
    }
    return NULL;
}

static void *spinner(void *arg)
{
    int *stop = arg;
    while (!__atomic_load_n(stop, __ATOMIC_SEQ_CST))
        weft_yield();
    return NULL;
}

static void errno_case(void *arg)
{
    (void)arg;
    static int stop;
    weft_t s, t[4];
    CHECK_ERR(weft_spawn(&s, spinner, &stop, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_spawn(&t[i], errno_thread, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    CHECK_ERR(weft_join(s, NULL, WEFT_FOREVER), 0);
    printf("errno: ok\n");
}

/* ---- stress ---- */

static int64_t short_block(void *arg)
{
    uintptr_t x = P2U(arg);
    struct timespec ts = {0, (long)(x % 300) * 1000};
    if (ts.tv_nsec)
        nanosleep(&ts, NULL);
    return (int64_t)(x * 3);
}

static void *blocker(void *arg)
{
    uintptr_t id = P2U(arg), sum = 0;
    int rounds = (int)test_scale(40);
    for (int i = 0; i < rounds; i++) {
        uintptr_t x = id * 1000 + (uintptr_t)i;
        int64_t r = weft_blocking(short_block, U2P(x));
        CHECK_EQ(r, (int64_t)(x * 3));
        sum += (uintptr_t)r;
        if (i % 3 == 0)
            weft_yield();
        else if (i % 3 == 1)
            weft_sleep(weft_after(WEFT_US(50)));
    }
    return U2P(sum);
}

static void *cruncher(void *arg)
{
    uintptr_t x = P2U(arg);
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        if (i % 50 == 0)
            weft_yield();
    }
    return U2P(x);
}

static void stress_case(void *arg)
{
    (void)arg;
    int nb = (int)test_scale(200), nc = 20;
    int rounds = (int)test_scale(40);
    weft_t *b = calloc((size_t)nb, sizeof *b), c[20];
    CHECK(b != NULL);
    for (int i = 0; i < nb; i++)
        CHECK_ERR(weft_spawn(&b[i], blocker, U2P(i), NULL), 0);
    for (int i = 0; i < nc; i++)
        CHECK_ERR(weft_spawn(&c[i], cruncher, U2P(i), NULL), 0);
    for (int i = 0; i < nb; i++) {
        void *res;
        CHECK_ERR(weft_join(b[i], &res, WEFT_FOREVER), 0);
        uintptr_t want = 0;
        for (int j = 0; j < rounds; j++)
            want += ((uintptr_t)i * 1000 + (uintptr_t)j) * 3;
        CHECK_EQ(P2U(res), want);
    }
    for (int i = 0; i < nc; i++) {
        void *res;
        CHECK_ERR(weft_join(c[i], &res, WEFT_FOREVER), 0);
        uintptr_t x = (uintptr_t)i;
        for (int j = 0; j < 2000; j++)
            x = x * 6364136223846793005u + 1442695040888963407u;
        CHECK_EQ(P2U(res), x);
    }
    free(b);
    printf("stress: %d threads x %d blocking sections: ok\n", nb, rounds);
}

/* ---- stop ---- */

static int fn_ran; /* atomic */

static int64_t mark_ran(void *arg)
{
    (void)arg;
    __atomic_store_n(&fn_ran, 1, __ATOMIC_SEQ_CST);
    return 5;
}

static void *stopped_caller(void *arg)
{
    (void)arg;
    CHECK_ERR(weft_stop(weft_self(), 0), 0);
    CHECK_ERR(weft_blocking(mark_ran, NULL), -ECANCELED);
    CHECK_EQ(__atomic_load_n(&fn_ran, __ATOMIC_SEQ_CST), 0);
    return NULL;
}

static weft_t stop_target;

static int64_t stopped_meanwhile(void *arg)
{
    (void)arg;
    /* A plain kernel thread here: stopping the weft thread that runs this
     * is allowed, and does not cut this short. */
    CHECK_ERR(weft_stop(stop_target, 0), 0);
    return 9;
}

static void *stop_during(void *arg)
{
    (void)arg;
    stop_target = weft_self();
    CHECK_EQ(weft_blocking(stopped_meanwhile, NULL), 9);
    CHECK_ERR(weft_sleep(weft_after(WEFT_SEC(10))), -ECANCELED); /* the next call */
    return NULL;
}

static void stop_case(void)
{
    weft_t t;
    CHECK_ERR(weft_spawn(&t, stopped_caller, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    CHECK_ERR(weft_spawn(&t, stop_during, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("stop: ok\n");
}

/* ---- file ---- */

static void *file_thread(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-t_blocking-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    char buf[4096], back[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(weft_write(fd, buf, sizeof buf, WEFT_FOREVER), (long)sizeof buf);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    for (int i = 0; i < 16; i++) {
        CHECK_EQ(weft_read(fd, back, sizeof back, WEFT_FOREVER), (long)sizeof back);
        CHECK(memcmp(buf, back, sizeof buf) == 0);
    }
    CHECK_EQ(weft_read(fd, back, sizeof back, 0), 0); /* end of file, deadline 0 */
    CHECK_ERR(weft_close(fd), 0);
    return NULL;
}

static void file_case(void *arg)
{
    (void)arg;
    weft_t t;
    CHECK_ERR(weft_spawn(&t, file_thread, NULL, NULL), 0);
    CHECK_ERR(weft_join(t, NULL, WEFT_FOREVER), 0);
    printf("file: ok\n");
}

static void all_on(void *arg)
{
    (void)arg;
    errno_case(NULL);
    stress_case(NULL);
    file_case(NULL);
}

int main(void)
{
    check_with_workers(1, pipe_case, NULL);
    const char *dbg = getenv("WEFT_DEBUG"); /* keep migrate, if set */
    char saved[256], with[300];
    snprintf(saved, sizeof saved, "%s", dbg ? dbg : "");
    snprintf(with, sizeof with, "%s,spare-exit", saved);
    setenv("WEFT_DEBUG", with, 1);
    check_with_workers(1, spares_case, NULL);
    if (dbg)
        setenv("WEFT_DEBUG", saved, 1);
    else
        unsetenv("WEFT_DEBUG");
    check_with_workers(1, sleep_case, NULL);
    check_with_workers(1, inside_case, NULL);
    check_with_workers(1, all_on, NULL);
    check_with_workers(2, all_on, NULL);
    args();
    stop_case();
    return 0;
}
