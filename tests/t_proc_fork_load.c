/*
 * t_proc_fork_load.c - fork mode in a busy process: 8 workers running
 * 10,000 threads that lock, allocate and print, while procs are started
 * 200 times, each child then using weft itself (threads, a mutex, a
 * channel), malloc and stdio. Each must answer: a child that inherited a
 * held lock (weft's, malloc's, stdio's) would hang, and the runner's
 * timeout would catch it.
 */
#include "proctest.h"

#include <stdatomic.h>

static weft_mutex_t lock = WEFT_MUTEX_INIT;
static long counter;
static atomic_int stop;

static void *busy(void *arg)
{
    long id = (long)arg;
    for (long i = 0; !atomic_load(&stop); i++) {
        weft_mutex_lock(&lock);
        counter++;
        weft_mutex_unlock(&lock);
#if !defined(WEFT_ASAN)
        /* gcc 12's ASan allocator has no fork handlers: a child forked
         * while another thread holds one of its locks hangs in malloc. */
        char *m = malloc((size_t)(16 + (i & 1023)));
        CHECK(m != NULL);
        m[0] = (char)i;
        free(m);
#endif
        if ((i & 4095) == 0 && id % 500 == 0)
            printf("busy %ld at %ld\n", id, i);
        weft_yield();
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    weft_mutex_t *m = arg;
    weft_mutex_lock(m);
    weft_mutex_unlock(m);
    return (void *)7;
}

/* In the child: a fresh runtime of one worker, locks, a channel, malloc
 * and printf all work. */
static ssize_t use_weft(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx, (void)in, (void)len, (void)out, (void)cap;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    weft_mutex_lock(&m);
    weft_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK_ERR(weft_spawn(&t[i], child_thread, &m, NULL), 0);
    weft_mutex_unlock(&m);
    long sum = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK_ERR(weft_join(t[i], &r, WEFT_FOREVER), 0);
        sum += (long)r;
    }
    weft_chan_t *ch;
    CHECK_ERR(weft_chan_new(&ch, sizeof(long), 1), 0);
    CHECK_ERR(weft_chan_send(ch, &sum, WEFT_FOREVER), 0);
    CHECK_ERR(weft_chan_recv(ch, &sum, WEFT_FOREVER), 0);
    weft_chan_free(ch);
    char *big = malloc(1 << 20);
    CHECK(big != NULL);
    free(big);
    weft_sleep(weft_after(WEFT_US(100)));
    printf("child %d sum %ld\n", getpid(), sum);
    fflush(stdout);
    return sum;
}
WEFT_PROC_ENTRY("use_weft", use_weft);

static void run(void *arg)
{
    (void)arg;
    long nthreads = test_scale(10000), reps = test_scale(200);
    weft_t *t = malloc((size_t)nthreads * sizeof *t);
    for (long i = 0; i < nthreads; i++)
        CHECK_ERR(weft_spawn(&t[i], busy, (void *)i, NULL), 0);
    for (long r = 0; r < reps; r++) {
        weft_proc_t *p;
        CHECK_ERR(weft_proc_new(&p, NULL), 0);
        char out[64];
        CHECK_EQ(weft_proc_call(p, "use_weft", NULL, 0, out, 28, weft_after(WEFT_SEC(60))), 28);
        CHECK_ERR(weft_proc_free(p), 0);
    }
    atomic_store(&stop, 1);
    for (long i = 0; i < nthreads; i++)
        CHECK_ERR(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    free(t);
    CHECK(counter > 0);
    CHECK(!pt_has_children());
    printf("ok\n");
}

int main(void)
{
    check_with_workers(8, run, NULL);
    return 0;
}
